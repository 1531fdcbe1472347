"""The PHP plugin against Apache Thrift's raw PHP client, on the same soa server, same run.

Groups:
- ``php sequential {method}``: one php-cli process calling for a while. Baseline: Apache
  Thrift's PHP client pinned to the server's address over one reused connection (TSocket,
  TBufferedTransport, TBinaryProtocol). Against it: ``Soa\\Client`` through discovery (the
  registry listing, cached), balancing, the pool and the per-call deadline. Goal: >= 0.9x the
  calls/s, p99 <= 1.2x. Run twice: with php-cli's defaults (no OPcache), and with OPcache on
  (``, opcache``), as php-fpm runs PHP by default.
- ``php process per call``: one php-cli process per call (start, connect, call, exit), raw vs
  the plugin with and without persistent sockets; php-cli's persistent sockets die with the
  process, so persistence cannot help here.
- ``php -S request per call, opcache``: one HTTP request per call to a long-lived ``php -S``
  worker with OPcache on (as php-fpm), raw and plugin, each with and without persistent
  sockets: here persistent sockets outlive the request.

The server is a soa server of bench/bench.thrift registered in a private etcd, so the plugin
finds it through discovery; the raw client is given its address. PHP measures its own latencies
(hrtime) in the sequential group, where both clients live in one php-cli process per round and
take ``harness.SLICES`` turns each (alternating); the per-process
and per-request groups are timed from here.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from . import harness

ROOT = Path(__file__).resolve().parent.parent
IDL = Path(__file__).with_name("bench.thrift")
PHP_BENCH = ROOT / "plugins" / "php" / "bench" / "bench.php"
PHP_WEB = ROOT / "plugins" / "php" / "bench" / "web.php"
PREFIX = "/soa-bench-php"


def registered_server(etcd_endpoint):
    """A soa server of the bench service, whose registry value (the one it would register
    itself) is written to ``etcd_endpoint`` under PREFIX through etcd's JSON gateway, without a
    lease: the server process then has no etcd client (no grpc) beside the calls it serves."""
    import base64

    from soa.config import load_config
    from soa.registry.instance import instance_key
    from soa.server import Server

    root = Path(tempfile.mkdtemp(prefix="soa-bench-php-"))
    (root / "soa.yaml").write_text(
        f"etcd:\n  endpoints: [{etcd_endpoint}]\n  prefix: {PREFIX}\n  lease_ttl: 10\n"
        "services:\n"
        "  bench:\n"
        f"    idl: {IDL}\n"
        "    service: BenchService\n"
        "    handler: bench.server_bench:BenchHandler\n"
        "    host: 127.0.0.1\n"
        "    port: 0\n"
    )
    config = load_config(str(root / "soa.yaml"))
    server = Server(config, config.service("bench"), register=False).start()
    body = {"key": base64.b64encode(instance_key(PREFIX, server.instance).encode()).decode(),
            "value": base64.b64encode(server.instance.encode()).decode()}
    request = urllib.request.Request(f"http://{etcd_endpoint}/v3/kv/put",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as r:
        r.read()
    return server.address[1]


# php-fpm runs with OPcache on (Debian's default, opcache.enable=1); php-cli without it
# (opcache.enable_cli=0). The groups that stand for php-fpm turn it on for the CLI.
OPCACHE = ("-d", "opcache.enable_cli=1")


def _php(*args, opcache=False):
    return [shutil.which("php"), "-d", "apc.enable_cli=1", *(OPCACHE if opcache else ()),
            *[str(a) for a in args]]


def require_opcache():
    """OPcache comes with Debian's php-cli (php8.2-cli depends on php8.2-opcache): fail loudly
    if it is missing, rather than measure the php-fpm groups without it."""
    out = subprocess.run(_php("-m", opcache=True), capture_output=True, text=True, check=True)
    if "Zend OPcache" not in out.stdout:
        raise RuntimeError("PHP's OPcache extension is not loaded (install php-opcache)")


def _sequential(gen, method, seconds, address, etcd, opcache=False):
    """One round of the raw client and the plugin, taking turns in one php-cli process:
    ``(raw Result, plugin Result)``."""
    args = [PHP_BENCH, f"--gen={gen}", "--mode=compare", f"--method={method}",
            f"--seconds={seconds}", f"--slices={harness.SLICES}", f"--address={address}",
            f"--etcd={etcd}", f"--prefix={PREFIX}"]
    out = subprocess.run(_php(*args, opcache=opcache), capture_output=True, text=True,
                         check=True, timeout=120)
    both = json.loads(out.stdout.strip().splitlines()[-1])
    return tuple(harness.Result(calls=r["calls"], seconds=r["seconds"], p50_ms=r["p50_ms"],
                                p99_ms=r["p99_ms"]) for r in (both["raw"], both["plugin"]))


def _timed(fn, seconds):
    """Calls ``fn()`` for ``seconds``; a Result of its wall times."""
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        fn()
        times.append(time.perf_counter() - now)
    times.sort()
    n = len(times)
    return harness.Result(calls=n, seconds=time.perf_counter() - start,
                          p50_ms=times[n // 2] * 1000,
                          p99_ms=times[min(n - 1, int(n * .99))] * 1000)


def _process(gen, mode, persist, address, etcd, cache_dir):
    cmd = _php(PHP_BENCH, f"--gen={gen}", f"--mode={mode}", "--method=ping", "--once",
               f"--persist={persist}", f"--address={address}", f"--etcd={etcd}",
               f"--prefix={PREFIX}")
    env = dict(os.environ, TMPDIR=str(cache_dir))  # the file cache's private folder lives there

    def one():
        subprocess.run(cmd, check=True, timeout=30, env=env, stdout=subprocess.DEVNULL)

    return one


class _Web:
    def __init__(self, gen, mode, persist, address, etcd):
        self.port = harness_free_port()
        env = dict(os.environ, SOA_GEN=str(gen), SOA_MODE=mode, SOA_PERSIST=str(persist),
                   SOA_ADDRESS=address, SOA_ETCD=etcd, SOA_PREFIX=PREFIX)
        env.pop("PHP_CLI_SERVER_WORKERS", None)
        self.proc = subprocess.Popen(_php("-S", f"127.0.0.1:{self.port}", PHP_WEB, opcache=True),
                                     env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.get()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=10) as r:
            r.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def harness_free_port():
    from soa.etcd_server import free_port

    return free_port()


def run(args):
    from soa.etcd_server import EtcdProcess

    work = Path(tempfile.mkdtemp(prefix="soa-bench-php-"))
    gen = work / "gen-php"
    gen.mkdir()
    subprocess.run([shutil.which("thrift"), "-r", "--gen", "php", "-out", str(gen), str(IDL)],
                   check=True)
    etcd = EtcdProcess(work / "etcd" / "data")
    etcd.start()
    server = None
    webs = []
    try:
        server = harness.start_server("bench.plugin_php_bench:registered_server", etcd.endpoint)
        address = f"127.0.0.1:{server.port}"
        rows = []
        require_opcache()
        for method, opcache in (("ping", False), ("echo", False), ("ping", True), ("echo", True)):
            raw, plugin = [], []
            for _ in range(args.rounds):
                a, b = _sequential(gen, method, args.seconds, address, etcd.endpoint, opcache)
                raw.append(a)
                plugin.append(b)
            group = f"php sequential {method}" + (", opcache" if opcache else "")
            rows.append(harness.Row(group, "raw Apache PHP client, one connection", raw, True))
            rows.append(harness.Row(group, "Soa\\Client (discovery, balancer, pool)", plugin))

        cases = [("raw Apache PHP client", "raw", 0), ("Soa\\Client, persistent", "plugin", 1),
                 ("Soa\\Client, not persistent", "plugin", 0)]
        cache_dir = work / "tmp"
        cache_dir.mkdir()
        results = {c: [] for c, *_ in cases}
        for _ in range(args.rounds):
            for case, mode, persist in cases:
                one = _process(gen, mode, persist, address, etcd.endpoint, cache_dir)
                results[case].append(_timed(one, args.seconds))
        for i, (case, *_) in enumerate(cases):
            rows.append(harness.Row("php process per call", case, results[case], i == 0))

        cases = [("raw Apache PHP client, TSocket persist", "raw", 1),
                 ("raw Apache PHP client, new connection", "raw", 0),
                 ("Soa\\Client, persistent", "plugin", 1),
                 ("Soa\\Client, not persistent", "plugin", 0)]
        webs = {case: _Web(gen, mode, persist, address, etcd.endpoint)
                for case, mode, persist in cases}
        results = {c: [] for c, *_ in cases}
        for _ in range(args.rounds):
            for case, *_ in cases:
                results[case].append(_timed(webs[case].get, args.seconds))
        for i, (case, *_) in enumerate(cases):
            rows.append(harness.Row("php -S request per call, opcache", case, results[case],
                                    i == 0))
        return rows
    finally:
        for web in (webs.values() if isinstance(webs, dict) else webs):
            web.stop()
        if server is not None:
            server.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    harness.print_table(run(parser.parse_args()))
