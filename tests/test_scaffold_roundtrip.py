"""The round trip a user makes with ``soa new``, with real processes against a real etcd.

In a fresh project: ``soa new`` from a fresh IDL; the generated tests pass as generated; ``soa
serve`` runs the result and ``soa call`` gets the "not implemented" application error from every
method; ``soa registry ls`` shows the instance's ``idl_hash``; then one method is filled in, the
server restarted, and the call succeeds.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soa import idl as soa_idl
from soa.testing.processes import ServiceProcess

SOA = str(Path(sys.executable).parent / "soa")

IDL = """\
/** Greets people. */
service GreeterService {
  /** Health probe. */
  string ping(),

  /** "Hello, NAME!" repeated `times` times, space-separated. */
  string greet(1: string name, 2: i32 times),

  /** How many greetings were made so far. */
  i64 count(),
}
"""

SOA_YAML = """\
# A user's project. This comment, and the one below, must survive `soa new`.
etcd:
  endpoints: [{endpoint}]
  prefix: {prefix}   # this test's own keys
  lease_ttl: 2

services: {{}}
"""


@pytest.fixture
def project(tmp_path, etcd_config):
    (tmp_path / "idl").mkdir()
    (tmp_path / "idl" / "greeter.thrift").write_text(IDL)
    (tmp_path / "soa.yaml").write_text(SOA_YAML.format(endpoint=etcd_config.endpoints[0],
                                                       prefix=etcd_config.prefix))
    return tmp_path


def soa(project, *args, timeout=60):
    return subprocess.run([SOA, "--config", str(project / "soa.yaml"), *args], cwd=project,
                          capture_output=True, text=True, timeout=timeout)


def served(project, etcd_config):
    return ServiceProcess(project / "soa.yaml", "greeter", etcd_endpoints=etcd_config.endpoints,
                          port=0)


def test_new_serve_call_implement(project, etcd_config):
    proc = soa(project, "new", "greeter", "--idl", "idl/greeter.thrift")
    assert proc.returncode == 0, proc.stderr
    text = (project / "soa.yaml").read_text()
    assert text.startswith("# A user's project.") and "# this test's own keys" in text

    # The generated tests pass straight away (they expect "not implemented" everywhere).
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_service_greeter.py"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "3 passed" in tests.stdout

    with served(project, etcd_config) as server:
        server.start()
        for method, args in (("ping", []), ("greet", ["Ann", 2]), ("count", [])):
            call = soa(project, "call", "greeter", method, json.dumps(args))
            assert call.returncode != 0, call.stdout
            lines = call.stderr.strip().splitlines()
            assert len(lines) == 1, call.stderr
            assert f"greeter.{method} is not implemented yet" in lines[0]

        # The registry shows which IDL the live instance serves.
        listing = soa(project, "registry", "ls", "greeter", "--json")
        assert listing.returncode == 0, listing.stderr
        rows = json.loads(listing.stdout)
        module = soa_idl.load(project / "idl" / "greeter.thrift")
        assert [row["idl_hash"] for row in rows] == [soa_idl.idl_hash(module.GreeterService)]

    # The developer fills in greet.
    handler = project / "services" / "greeter" / "handler.py"
    source = handler.read_text()
    stub = 'raise NotImplementedYet("greeter.greet is not implemented yet")'
    assert source.count(stub) == 1
    handler.write_text(source.replace(stub, 'return " ".join([f"Hello, {name}!"] * times)'))

    with served(project, etcd_config) as server:
        server.start()
        call = soa(project, "call", "greeter", "greet", json.dumps(["Ann", 2]))
        assert call.returncode == 0, call.stderr
        assert json.loads(call.stdout) == "Hello, Ann! Hello, Ann!"
        still = soa(project, "call", "greeter", "count", "[]")
        assert still.returncode != 0 and "greeter.count is not implemented yet" in still.stderr
