"""The Node.js plugin against the raw Apache Thrift Node client (baseline), on one soa server.

Groups (per concurrency, 1 and 64 concurrent promises): ``raw thrift (node)`` is Apache's Node
client pinned to the server's address over one reused connection (concurrent calls pipelined
on it); ``soa plugin (node)`` is plugins/node calling through discovery (a real etcd),
balancing and its connection pool, THeader included when the server speaks it (and once more
with ``theader: false``, plain Thrift to the same server, which tells the plugin's own cost
from that of the server's THeader path). All run in one
Node process (plugins/node/bench/bench.js), against the same soa server, taking turns within
each round (``harness.SLICES`` turns each, in an order that rotates), so
ratios are taken round by round. Calls: ``ping``. The goal: the plugin reaches at
least 0.9x the raw client's calls/s, and its p99 is at most 1.2x the raw client's.
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import harness

ROOT = Path(__file__).resolve().parent.parent
IDL = Path(__file__).with_name("bench.thrift")
NODE_DIR = ROOT / "plugins" / "node"
PREFIX = "/soa-bench-node"


def register(endpoint, port):
    """Put the server's registry value in etcd under a lease, from this process: the server
    itself runs without registration, so that no etcd traffic shares its loop with the calls
    measured. Returns a function that revokes the lease."""
    from soa.config import EtcdConfig
    from soa.registry.etcd import EtcdConnection
    from soa.registry.instance import Instance, instance_key

    connection = EtcdConnection(EtcdConfig(endpoints=(endpoint,), prefix=PREFIX))
    client = connection.client()
    instance = Instance(service="bench", host=harness.HOST, port=port, theader=True)
    lease = client.lease(600)
    client.put(instance_key(PREFIX, instance), instance.encode(), lease=lease)

    def revoke():
        try:
            client.revoke_lease(lease.id)
        finally:
            connection.close()

    return revoke


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed")
    return path


def run(args):
    from soa.etcd_server import EtcdProcess

    if not (NODE_DIR / "node_modules" / "etcd3").is_dir():
        subprocess.run([_tool("npm"), "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="soa-bench-node-"))
    gen = work / "gen-nodejs"
    gen.mkdir()
    subprocess.run([_tool("thrift"), "--gen", "js:node", "-out", str(gen), str(IDL)], check=True)
    etcd = EtcdProcess(work / "etcd")
    etcd.start()
    server = unregister = None
    try:
        server = harness.start_server("bench.server_bench:soa_server")
        unregister = register(etcd.endpoint, server.port)
        cmd = [_tool("node"), str(NODE_DIR / "bench" / "bench.js"), f"--gen={gen}",
               f"--port={server.port}", f"--etcd={etcd.endpoint}", f"--prefix={PREFIX}",
               f"--seconds={args.seconds}", f"--rounds={args.rounds}",
               f"--slices={harness.SLICES}"]
        env = {"NODE_PATH": str(NODE_DIR / "node_modules"), "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                text=True)
        harness.pin(proc.pid, server=False)  # the load generator's CPU
        out, err = proc.communicate(timeout=60 + 4 * args.rounds * (args.seconds + 0.5))
        if proc.returncode != 0:
            raise RuntimeError(f"bench.js failed: {err.strip()}")
        data = json.loads(out)
    finally:
        if unregister is not None:
            unregister()
        if server is not None:
            server.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)
    theader = " (THeader)" if all(data["theader"]) else ""
    rows = []
    for c in sorted(data["raw"], key=int):
        group = f"node ping c={c}"
        rows.append(harness.Row(group, "raw thrift (node), 1 connection",
                                [_result(r) for r in data["raw"][c]], baseline=True))
        rows.append(harness.Row(group, f"soa plugin (node){theader}",
                                [_result(r) for r in data["plugin"][c]]))
        rows.append(harness.Row(group, "soa plugin (node), theader: false",
                                [_result(r) for r in data["plain"][c]]))
    return rows


def _result(r):
    return harness.Result(r["calls"], r["seconds"], r["p50_ms"], r["p99_ms"])
