"""The Node.js plugin against the raw Apache Thrift Node client (baseline), on one soa server.

Groups (per concurrency, 1 and 64 concurrent promises): ``raw thrift (node)`` is Apache's Node
client pinned to the server's address over one reused connection (concurrent calls pipelined
on it); ``soa plugin (node)`` is plugins/node calling through discovery (a real etcd),
balancing and its connection pool, THeader included when the server speaks it. Both run in one
Node process (plugins/node/bench/bench.js), alternating round by round against the same soa
server, so ratios are taken round by round. Calls: ``ping``. The goal: the plugin reaches at
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


def registered_server(endpoint, prefix):
    """A soa server of BenchService, registered in the etcd at ``endpoint``; returns its port."""
    from soa.config import load_config
    from soa.server import Server

    root = Path(tempfile.mkdtemp(prefix="soa-bench-node-"))
    (root / "soa.yaml").write_text(
        f"etcd: {{endpoints: ['{endpoint}'], prefix: '{prefix}', lease_ttl: 10}}\n"
        "services:\n"
        "  bench:\n"
        f"    idl: {IDL}\n"
        "    service: BenchService\n"
        "    handler: bench.server_bench:BenchHandler\n"
        "    host: 127.0.0.1\n"
        "    port: 0\n"
    )
    config = load_config(str(root / "soa.yaml"))
    server = Server(config, config.service("bench")).start()
    return server.address[1]


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
    server = None
    try:
        server = harness.start_server("bench.plugin_node_bench:registered_server", etcd.endpoint,
                                      PREFIX)
        cmd = [_tool("node"), str(NODE_DIR / "bench" / "bench.js"), f"--gen={gen}",
               f"--port={server.port}", f"--etcd={etcd.endpoint}", f"--prefix={PREFIX}",
               f"--seconds={args.seconds}", f"--rounds={args.rounds}"]
        env = {"NODE_PATH": str(NODE_DIR / "node_modules"), "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                text=True)
        harness._pin(proc.pid, server=False)  # noqa: SLF001 - the load generator's CPU
        out, err = proc.communicate(timeout=60 + 4 * args.rounds * (args.seconds + 0.5))
        if proc.returncode != 0:
            raise RuntimeError(f"bench.js failed: {err.strip()}")
        data = json.loads(out)
    finally:
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
    return rows


def _result(r):
    return harness.Result(r["calls"], r["seconds"], r["p50_ms"], r["p99_ms"])
