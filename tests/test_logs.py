"""--log-format json: one JSON object per line, the access log's fields unchanged."""

import io
import json
import logging
import os
import subprocess
import sys

import soa
from fixtures.server_support import client, echo_config, echo_idl
from soa.cli.logs import JsonFormatter
from soa.config import load_config


def test_access_log_records_as_json_keep_their_fields(tmp_path, etcd_config):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("soa.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    server = soa.serve("echo", load_config(str(echo_config(tmp_path, etcd_config))), block=False)
    try:
        module = echo_idl(tmp_path)
        c = client(module, server.address[1])
        c.echo("hi")
        try:
            c.fail("declared")
        except module.EchoError:
            pass
    finally:
        server.stop(grace=0)
        access.removeHandler(handler)
        access.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    first, second = records
    assert first["logger"] == "soa.access" and first["level"] == "INFO"
    assert first["pid"] == os.getpid()
    assert (first["service"], first["method"], first["outcome"]) == ("echo", "echo", "ok")
    assert first["peer"].startswith("127.0.0.1:") and first["duration_ms"] >= 0
    assert first["message"].startswith("echo.echo peer=")
    assert second["outcome"] == "declared:EchoError"


def test_cli_log_format_json_and_its_usage_error(tmp_path):
    env = dict(os.environ, SOA_CONFIG=str(tmp_path / "none.yaml"))
    env.pop("SOA_LOG_FORMAT", None)
    # A config error is logged nowhere but reported as one line; the option itself is checked.
    bad = subprocess.run([sys.executable, "-m", "soa", "--log-format", "xml", "registry", "ls"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "xml" in bad.stderr
    code = ("import logging, sys; from soa.cli.context import CliContext;"
            " CliContext(log_format='json', verbose=1);"
            " logging.getLogger('soa.x').info('hello %s', 'there', extra={'k': 1})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    [record] = [json.loads(line) for line in out.stderr.splitlines()]
    assert record["message"] == "hello there" and record["k"] == 1
    assert record["logger"] == "soa.x" and record["time"].endswith("Z")
