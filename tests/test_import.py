"""Importing soa: no monkey patching, and etcd3's protobuf stubs load under current protobuf."""

import os
import subprocess
import sys


def run(code):
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)


def test_import_soa_and_registry_in_a_fresh_process_without_patching():
    result = run(
        "import soa, soa.registry.etcd, gevent.monkey\n"
        "from google.protobuf.internal import api_implementation\n"
        "print(api_implementation.Type(), gevent.monkey.is_module_patched('socket'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "False"]


def test_protobuf_imported_first_with_a_native_backend_gives_a_clear_error():
    result = run(
        "import google.protobuf.descriptor_pb2\n"
        "from google.protobuf.internal import api_implementation\n"
        "assert api_implementation.Type() != 'python', api_implementation.Type()\n"
        "try:\n"
        "    import registry.etcd\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python" in result.stdout


def test_entry_init_patches_and_makes_grpc_cooperative():
    result = run(
        "from soa import entry; entry.init()\n"
        "import gevent.monkey; print(gevent.monkey.is_module_patched('socket'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
