"""gevent without soa.entry.init(): programs that patch by themselves, in subprocesses, against
a real etcd and a real `soa serve`. The registry turns on grpc's gevent mode on first use; a
process that has not patched gets one clear error instead of a hang."""

import os
import subprocess
import sys
import textwrap
import urllib.request

import gevent
import pytest
from fixtures.server_support import echo_config

from soa.testing.processes import ServiceProcess


@pytest.fixture
def server(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config)
    with ServiceProcess(path, "echo") as process:
        process.start()
        yield path, process


def fresh_env(path):
    """The environment of a program that never heard of soa.entry.init()."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "GRPC_ENABLE_FORK_SUPPORT")}
    env["SOA_CONFIG"] = str(path)
    return env


def run(path, code, timeout=60):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=fresh_env(path),
                          cwd=str(path.parent))


PLAIN = """
    from gevent import monkey; monkey.patch_all()
    {before}
    import gevent
    import soa

    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(1) or gevent.sleep(0.01) for _ in range(10**6)])
    client = soa.client("echo")
    print(client.echo("one"))
    gevent.sleep(1.0)  # the registry's watch and grpc must leave the hub free meanwhile
    print(client.echo("two"), client.pid())
    print("ticks", len(ticks) > 50)
    from google.protobuf.internal import api_implementation
    print("protobuf", api_implementation.Type())
    client.close()
    ticker.kill()
"""


@pytest.mark.parametrize("before", ["", "import grpc.experimental.gevent as g; g.init_gevent()"],
                         ids=["plain", "grpc-gevent-already-on"])
def test_a_program_that_patches_by_itself_works(server, before):
    path, process = server
    result = run(path, PLAIN.format(before=before))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "one", f"two {process.pid}", "ticks True", "protobuf python"], result.stderr[-3000:]


def test_a_program_that_has_not_patched_gets_one_clear_error_not_a_hang(server):
    path, _ = server
    result = run(path, """
        import soa
        try:
            soa.client("echo")
        except soa.SoaError as e:
            print(e)
    """, timeout=30)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "soa.entry.init()" in result.stdout and "monkey-patched" in result.stdout


APP = '''
"""An application module that builds its soa client at import time, as web apps do."""
import soa

CLIENT = soa.client("echo")


def application(environ, start_response):
    text = environ["PATH_INFO"].strip("/")
    if text == "protobuf":
        from google.protobuf.internal import api_implementation
        body = api_implementation.Type().encode()
    else:
        body = f"{CLIENT.echo(text)} {CLIENT.pid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''

WORKER = """
    # What gunicorn's gevent worker does: patch first, then import the application, then serve.
    from gevent import monkey; monkey.patch_all()
    import sys
    sys.path.insert(0, ".")
    import app
    from gevent.pywsgi import WSGIServer

    server = WSGIServer(("127.0.0.1", 0), app.application, log=None)
    server.start()
    print(server.server_port, flush=True)
    server.serve_forever()
"""


def test_a_gunicorn_style_gevent_worker_serves_calls(server):
    path, process = server
    (path.parent / "app.py").write_text(APP)
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=fresh_env(path), cwd=str(path.parent))
    try:
        with gevent.Timeout(30):
            port = int(worker.stdout.readline())

        def get(text):
            url = f"http://127.0.0.1:{port}/{text}"
            with urllib.request.urlopen(url, timeout=20) as response:
                return response.read().decode()

        calls = [gevent.spawn(get, f"w{n}") for n in range(20)]  # concurrent requests
        gevent.joinall(calls, timeout=30, raise_error=True)
        assert [c.value for c in calls] == [f"w{n} {process.pid}" for n in range(20)]
        assert get("protobuf") == "python"  # the backend etcd3's stubs need, chosen in time
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker.stdout.close()
        worker.stderr.close()
