"""The Go plugin against Apache Thrift's own Go client, on the same soa server in the same run.

- baseline: the raw Apache Thrift Go client pinned to the server's address, over one reused
  buffered binary connection (goroutines take turns on it; a TStandardClient is not safe for
  concurrent use);
- ``raw over THeader``: the same raw client speaking THeader (no info headers): what the soa
  server's THeader path costs, apart from the plugin;
- ``plugin``: plugins/go's Client through discovery (etcd, started here), balancing and pooling;
  soa servers advertise ``theader``, so it sends THeader frames with the deadline and target.
All three run in one ``plugins/go/internal/livecheck -mode compare`` process per concurrency (1
and 64 goroutines), calling ``echo("hello")`` of tests/fixtures/client_echo.thrift and taking
``harness.SLICES`` turns within each round, so that each round of the three meets the same
machine. The server has the servers' CPU and livecheck the load generator's, as in the other
benchmarks. At 64 goroutines the raw client's one connection carries one call at a time (each
waits for the round trip before the next is written), while the plugin spreads them over its
pool: that ratio measures pooling.
Goal: the plugin reaches >= 0.9x the raw client's calls/s with a p99 <= 1.2x. The server's CPU
time per call (``srv cpu us/call``) tells the server's THeader cost from the client's.
"""

import json
import subprocess
import tempfile
from pathlib import Path

from . import harness

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "go"
ECHO_IDL = ROOT / "tests" / "fixtures" / "client_echo.thrift"
GO_ENV = {"GOFLAGS": "-mod=mod -buildvcs=false", "GOTOOLCHAIN": "local"}
CONCURRENCY = (1, 64)


def _run(cmd, timeout):
    import os

    proc = subprocess.run([str(c) for c in cmd], cwd=PLUGIN, env={**os.environ, **GO_ENV},
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _compare(binary, etcd, server, concurrency, args):
    """The three cases' rounds from one livecheck process; the server's CPU time per call
    rides along (``cpu_us``)."""
    out = _run([binary, "-mode", "compare", "-concurrency", concurrency, "-rounds", args.rounds,
                "-slices", harness.SLICES,
                "-duration", f"{args.seconds}s", "-addr", server.address, "-etcd", etcd.endpoint,
                "-prefix", "/bench-go", "-server-pid", server.pid],
               120 + 4 * args.rounds * (args.seconds + 1))
    data = json.loads(out.strip().splitlines()[-1])
    results = {}
    for case, rounds in data.items():
        failed = sum(r["failed"] for r in rounds)
        if failed:
            raise RuntimeError(f"{failed} {case} call(s) failed during the benchmark")
        results[case] = [harness.Result(r["calls"], r["seconds"], r["p50_ms"], r["p99_ms"],
                                        cpu_us=r.get("server_cpu_us")) for r in rounds]
    return results


def run(args):
    from soa.etcd_server import EtcdProcess, free_port
    from soa.testing.processes import ServiceProcess, write_config
    from soa.testing.tools import require_tool

    rows = []
    with tempfile.TemporaryDirectory(prefix="soa-bench-go-") as tmp:
        tmp = Path(tmp)
        binary = tmp / "livecheck"
        _run([require_tool("go"), "build", "-o", binary, "./internal/livecheck"], 600)
        etcd = EtcdProcess(tmp / "etcd" / "data").start()
        server = None
        try:
            service = {"idl": str(ECHO_IDL), "service": "EchoService",
                       "handler": "tests.fixtures.client_handler:EchoHandler",
                       "host": "127.0.0.1"}
            config = write_config(tmp, etcd_endpoints=[etcd.endpoint], prefix="/bench-go",
                                  services={"echo": service})
            port = free_port()
            server = ServiceProcess(config, "echo", port=port,
                                    env={"PYTHONPATH": str(ROOT), "SOA_TEST_PORT": str(port)})
            server.start(30)
            harness.pin(server.pid, server=True)  # the servers' CPU, as in the other benches
            for c in CONCURRENCY:
                results = _compare(binary, etcd, server, c, args)
                group = f"go plugin, {c} goroutine(s)"
                rows.append(harness.Row(group, "raw Apache Thrift Go, 1 connection",
                                        results["raw"], baseline=True))
                rows.append(harness.Row(group, "raw Apache Thrift Go over THeader",
                                        results["raw_theader"]))
                rows.append(harness.Row(group, "plugin: etcd + balancer + pool (THeader)",
                                        results["plugin"]))
        finally:
            if server is not None:
                server.stop(timeout=5)
            etcd.stop()
    return rows
