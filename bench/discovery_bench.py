"""Discovery: how fast the registry's state reaches a client's Picker (etcd started here).

- ``cold resolve 1000``: a new resolver and client, until its Picker holds 1,000 instances
  (target: under 100 ms). Baseline: a new raw etcd3 client doing one ``get_prefix`` of the same
  keys (connect + range read: the floor any resolver pays).
- ``register -> picked``: with 1,000 instances known, one more is put in etcd; the time from the
  put's acknowledgement (when ``register()`` returns) until the client's Picker holds it
  (target: p99 under 50 ms). Baseline: the put's own round trip (etcd's fsync, not ours).
- ``burst of 100 changes``: 100 puts issued at once (100 greenlets), from the first put until the
  Picker holds all 100 (target: under 1 s). Baseline: the 100 puts alone.
Rows report each measurement's p50/p99 in ms; calls/s is measurements per second.
"""

import tempfile
import time
from pathlib import Path

from . import harness

IDL = Path(__file__).with_name("bench.thrift")
SERVICE = "bench"
PREFIX = "/bench"
N = 1000


def _keys(start, count):
    from soa.registry.instance import Instance, instance_key

    out = []
    for i in range(start, start + count):
        instance = Instance(service=SERVICE, host=f"10.{i // 65536 % 256}.{i // 256 % 256}."
                            f"{i % 256}", port=9000 + i % 1000, idl_hash="")
        out.append((instance_key(PREFIX, instance), instance.encode(), instance.address))
    return out


def _result(samples_s, total_s=None):
    samples = sorted(samples_s)
    total = total_s if total_s is not None else sum(samples)
    return harness.Result(len(samples), total, harness._pct(samples, 0.5) * 1e3,
                          harness._pct(samples, 0.99) * 1e3)


def _client(etcd_config):
    from soa.registry.resolver import EtcdResolver
    from soa.clients.service_client import build
    from soa.config import Config

    resolver = EtcdResolver(etcd_config)
    client = build(SERVICE, Config(etcd=etcd_config), resolver, idl=IDL,
                   thrift_service="BenchService", owns_resolver=True)
    return client


def _wait_for(client, addresses, timeout=10.0):
    import gevent

    known = client.discovery.known
    end = time.perf_counter() + timeout
    while True:
        known = client.discovery.known
        if all(a in known for a in addresses):
            return time.perf_counter()
        if time.perf_counter() > end:
            raise RuntimeError(f"{len(addresses)} instance(s) not seen within {timeout}s")
        gevent.sleep(0.0002)


def run(args):
    from dataclasses import replace

    from soa import entry

    entry.init()  # grpc (the etcd client) must cooperate with gevent, as in every soa process
    import etcd3
    import gevent

    import soa.registry.etcd  # noqa: F401  (selects the protobuf backend etcd3's stubs need)
    from soa.config import EtcdConfig
    from soa.etcd_server import EtcdProcess
    rounds = max(3, args.rounds)
    etcd = EtcdProcess(Path(tempfile.mkdtemp(prefix="soa-bench-etcd-")) / "data")
    etcd.start()
    try:
        config = replace(EtcdConfig(), endpoints=(etcd.endpoint,), prefix=PREFIX)
        host, port = etcd.endpoint.split(":")
        raw = etcd3.client(host=host, port=int(port))
        initial = _keys(0, N)
        for i in range(0, N, 100):
            raw.transaction(compare=[], success=[raw.transactions.put(k, v)
                                                 for k, v, _ in initial[i:i + 100]], failure=[])
        rows = []

        # -- cold resolve ------------------------------------------------------------------------
        cold, floor = [], []
        for i in range(rounds * 3 + 1):  # the first round (imports, first channel) is warm-up
            t0 = time.perf_counter()
            probe = etcd3.client(host=host, port=int(port))
            assert len(list(probe.get_prefix(f"{PREFIX}/services/{SERVICE}/"))) == N
            floor.append(time.perf_counter() - t0)
            probe.close()
            t0 = time.perf_counter()
            client = _client(config)
            client.resolver.instances(SERVICE)
            assert len(client.instances) == N, len(client.instances)
            if i:
                cold.append(time.perf_counter() - t0)
            else:
                floor.clear()
            client.close()
        rows += [harness.Row("discovery cold resolve 1000", "raw etcd3 get_prefix",
                             [_result(floor)], True),
                 harness.Row("discovery cold resolve 1000", "soa client picker ready",
                             [_result(cold)])]

        # -- register -> picked ------------------------------------------------------------------
        client = _client(config)
        client.resolver.instances(SERVICE)
        try:
            puts, picked = [], []
            for key, value, address in _keys(N, 200):
                t0 = time.perf_counter()
                raw.put(key, value)
                registered = time.perf_counter()  # register() returns once the put is done
                puts.append(registered - t0)
                picked.append(_wait_for(client, [address]) - registered)
            rows += [harness.Row("discovery register -> picked", "etcd put round trip",
                                 [_result(puts)], True),
                     harness.Row("discovery register -> picked", "soa client picker has it",
                                 [_result(picked)])]

            # -- burst of 100 changes ------------------------------------------------------------
            bursts, put_only = [], []
            for r in range(rounds):
                batch = _keys(N + 1000 + r * 100, 100)
                t0 = time.perf_counter()
                # 100 registrations at once, as when a deploy starts many instances together
                gevent.joinall([gevent.spawn(raw.put, k, v) for k, v, _ in batch],
                               raise_error=True)
                put_only.append(time.perf_counter() - t0)
                bursts.append(_wait_for(client, [a for _, _, a in batch]) - t0)
            rows += [harness.Row("discovery burst of 100 changes", "100 etcd puts",
                                 [_result(put_only)], True),
                     harness.Row("discovery burst of 100 changes", "soa client picker has all",
                                 [_result(bursts)])]
        finally:
            client.close()
            raw.close()
        return rows
    finally:
        etcd.stop()


if __name__ == "__main__":
    import argparse

    from soa import entry

    entry.init()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    harness.print_table(run(parser.parse_args()))
