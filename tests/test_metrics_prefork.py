"""Pre-fork: one scrape is the sum over the workers; JSON logs carry each worker's pid."""

import json

from prometheus_client.parser import text_string_to_metric_families

from fixtures.server_support import client, echo_config, echo_idl
from soa.observe.scrape import fetch
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess


def scrape(port):
    status, text = fetch("127.0.0.1", port)
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def calls(samples, method, outcome="ok"):
    key = ("soa_server_calls_total",
           (("method", method), ("outcome", outcome), ("service", "echo")))
    return samples.get(key, 0)


def test_calls_spread_over_three_workers_add_up_exactly(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config)
    module = echo_idl(tmp_path)
    with ServiceProcess(path, "echo", workers=3, env={"SOA_LOG_FORMAT": "json"}) as proc:
        proc.start()
        port = proc.instance.metrics_port
        assert port > 0
        made = {"pid": 0, "echo": 0}
        seen = {}
        open_clients = []

        def one_more_connection():
            c = client(module, proc.port)
            open_clients.append(c)
            pid = c.pid()
            made["pid"] += 1
            for _ in range(3):
                c.echo("x")
                made["echo"] += 1
            seen[pid] = seen.get(pid, 0) + 1
            return len(seen) == 3

        wait_until(one_more_connection, timeout=20, message="calls reach all three workers")
        assert proc.pid not in seen
        status, text = fetch("127.0.0.1", port)
        types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(types) == len(set(types))  # each family once: merged, not repeated
        samples = scrape(port)
        assert calls(samples, "pid") == made["pid"]
        assert calls(samples, "echo") == made["echo"]
        key = ("soa_server_call_duration_seconds_count", (("method", "echo"), ("service", "echo")))
        assert samples[key] == made["echo"]
        assert samples[("soa_server_connections", (("service", "echo"),))] == len(open_clients)
        assert samples[("process_cpu_seconds_total", ())] > 0
        renewals = ("soa_registry_lease_renewals_total", (("service", "echo"),))
        assert renewals in samples
        # The next scrape sees the next call, whichever worker serves it.
        open_clients[0].echo("one more")
        assert calls(scrape(port), "echo") == made["echo"] + 1
        assert fetch("127.0.0.1", port, "/readyz")[0] == 200
        for c in open_clients:
            c.close()
        assert proc.stop() == 0
        records = [json.loads(line) for line in proc.output().splitlines()
                   if line.startswith("{")]
        assert records, proc.output()
        assert all({"time", "level", "logger", "pid", "message"} <= set(r) for r in records)
        pids = {r["pid"] for r in records}
        assert set(seen) <= pids  # every worker's own records carry its pid
        assert proc.pid in pids
        assert not [line for line in proc.output().splitlines()
                    if line.strip() and not line.startswith("{")], proc.output()
