"""``soa new``: the generated handler, test module and soa.yaml entry, checked as a user would.

Each test works in a fresh temporary project with a small IDL of its own; ``soa`` runs as a real
process. The generated test module is run with pytest in a subprocess, against the session's
real etcd (its own fixtures start it there).
"""

import importlib.util
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soa.config import load_config

BIN = Path(sys.executable).parent
SOA = str(BIN / "soa")

TYPES_IDL = """\
/** Plain geometry, included by hello.thrift. */
struct Point {
  1: required double x,
  2: required double y,
}

/** What every service has. */
service Base {
  /** Health probe: returns "pong". */
  string ping(),
}
"""

HELLO_IDL = """\
/** Greetings, for the scaffolding tests. */
include "types.thrift"

enum Mood {
  HAPPY = 1,
  GRUMPY = 2,
}

/** Someone to greet. */
struct Person {
  1: required string name,
  2: optional i32 age,
  3: list<string> nicknames,
  4: Mood mood,
}

exception Refused {
  1: string reason,
}

/** Says hello. */
service HelloService extends types.Base {
  /** Greets someone by name, `times` times. */
  string greet(1: string name, 2: i32 times) throws (1: Refused refused),

  /**
   * Describes a person.
   * A second line, with "quotes" and a backslash \\ in it.
   */
  Person describe(1: Person person, 2: map<string, double> scores, 3: binary avatar,
                  4: bool loud, 5: i64 at_ms, 6: types.Point where, 7: set<i16> codes),

  /** Fire and forget. */
  oneway void poke(1: list<types.Point> points),

  list<Mood> moods(),
}
"""

SOA_YAML = """\
# A project's configuration: these comments must survive `soa new`.
etcd:
  prefix: /scaffold   # our own prefix

services:  # nothing yet
"""


def soa(project, *args, timeout=60):
    return subprocess.run([SOA, *args], cwd=project, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "idl").mkdir()
    (tmp_path / "idl" / "types.thrift").write_text(TYPES_IDL)
    (tmp_path / "idl" / "hello.thrift").write_text(HELLO_IDL)
    (tmp_path / "soa.yaml").write_text(SOA_YAML)
    return tmp_path


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generates_handler_entry_and_tests(project):
    proc = soa(project, "new", "hello", "--idl", "idl/hello.thrift")
    assert proc.returncode == 0, proc.stderr
    handler_file = project / "services" / "hello" / "handler.py"
    test_file = project / "tests" / "test_service_hello.py"
    assert handler_file.is_file() and test_file.is_file()
    assert (project / "services" / "__init__.py").is_file()

    # soa.yaml: the entry is there, and the comments that were there still are.
    text = (project / "soa.yaml").read_text()
    assert text.startswith(SOA_YAML.rstrip("\n"))
    config = load_config(project / "soa.yaml")
    service = config.service("hello")
    assert service.idl == project / "idl" / "hello.thrift"
    assert service.thrift_service == "HelloService"
    assert service.handler == "services.hello.handler:HelloHandler"
    assert service.port == 0
    assert "    idl: idl/hello.thrift\n" in text

    # The handler: one method per IDL method, typed, documented, raising "not implemented".
    module = import_file(handler_file, "scaffold_hello_handler")
    cls = module.HelloHandler
    assert list(inspect.signature(cls).parameters) == ["context"]
    handler = cls(context=None)
    assert str(inspect.signature(cls.greet)) == "(self, name: str, times: int) -> str"
    describe = inspect.signature(cls.describe)
    assert [str(p) for p in describe.parameters.values()][1:] == [
        "person: 'hello_thrift.Person'", "scores: dict[str, float]", "avatar: bytes",
        "loud: bool", "at_ms: int", "where: 'hello_thrift.types.Point'", "codes: set[int]",
    ]
    assert describe.return_annotation == "hello_thrift.Person"
    poke = "(self, points: 'list[hello_thrift.types.Point]') -> None"
    assert str(inspect.signature(cls.poke)) == poke
    assert inspect.signature(cls.moods).return_annotation == list[int]
    assert cls.greet.__doc__ == "Greets someone by name, `times` times."
    assert inspect.getdoc(cls.describe) == (
        'Describes a person.\nA second line, with "quotes" and a backslash \\ in it.')
    assert cls.poke.__doc__ == "Fire and forget."
    assert cls.moods.__doc__  # undocumented in the IDL: still a docstring
    assert cls.ping.__doc__ == 'Health probe: returns "pong".'  # inherited, from types.thrift
    assert "Says hello." in cls.__doc__
    # The module's IDL handle is the one the server loads (same classes on the wire).
    from soa.idl import load

    assert module.hello_thrift is load(project / "idl" / "hello.thrift")
    assert module.hello_thrift.types.Point is load(project / "idl" / "hello.thrift").types.Point
    with pytest.raises(NotImplementedError, match=r"^hello\.greet is not implemented yet$"):
        handler.greet("x", 1)
    with pytest.raises(NotImplementedError, match=r"^hello\.moods is not implemented yet$"):
        handler.moods()

    # Idiomatic: ruff (its default rules; the project has no ruff config) finds nothing.
    # Also at the default line length (88), so it fits projects that do check it.
    ruff = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--extend-select", "E501",
                           "services", "tests"],
                          cwd=project, capture_output=True, text=True, timeout=60)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr

    # The generated tests pass straight away: each method reports "not implemented".
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "5 passed" in tests.stdout


def test_refuses_to_overwrite_without_force(project):
    assert soa(project, "new", "hello", "--idl", "idl/hello.thrift").returncode == 0
    handler_file = project / "services" / "hello" / "handler.py"
    handler_file.write_text("# my work\n")
    yaml_before = (project / "soa.yaml").read_text()

    proc = soa(project, "new", "hello", "--idl", "idl/hello.thrift")
    assert proc.returncode == 1
    assert len(error_lines(proc)) == 1, proc.stderr
    assert "services/hello/handler.py" in proc.stderr and "--force" in proc.stderr
    assert handler_file.read_text() == "# my work\n"
    assert (project / "soa.yaml").read_text() == yaml_before

    proc = soa(project, "new", "hello", "--idl", "idl/hello.thrift", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "class HelloHandler" in handler_file.read_text()
    text = (project / "soa.yaml").read_text()
    assert text.count("hello:") == 1 and text.startswith(SOA_YAML.rstrip("\n"))


def test_bad_idl_says_file_line_and_why(project):
    bad = project / "idl" / "bad.thrift"
    bad.write_text("service Bad {\n  string ping(\n}\n")
    proc = soa(project, "new", "bad", "--idl", "idl/bad.thrift")
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert f"{bad}:3:" in lines[0]
    assert not (project / "services").exists()
    assert (project / "soa.yaml").read_text() == SOA_YAML


def test_several_services_need_a_choice(project):
    (project / "idl" / "two.thrift").write_text(
        "service A {\n  string ping(),\n}\nservice B {\n  void nothing(),\n}\n")
    proc = soa(project, "new", "two", "--idl", "idl/two.thrift")
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "--service" in proc.stderr and "A, B" in proc.stderr

    proc = soa(project, "new", "two-b", "--idl", "idl/two.thrift", "--service", "B")
    assert proc.returncode == 0, proc.stderr
    handler = (project / "services" / "two_b" / "handler.py").read_text()
    assert "class TwoBHandler:" in handler and "def nothing(self) -> None:" in handler
    assert load_config(project / "soa.yaml").service("two-b").handler == (
        "services.two_b.handler:TwoBHandler")


def test_creates_soa_yaml_when_missing(tmp_path):
    (tmp_path / "hello.thrift").write_text("/** Hi. */\nservice Hi {\n  /** Ping. */\n"
                                           "  string ping(),\n}\n")
    proc = soa(tmp_path, "new", "hi", "--idl", "hello.thrift")
    assert proc.returncode == 0, proc.stderr
    assert load_config(tmp_path / "soa.yaml").service("hi").thrift_service == "Hi"


def test_every_shop_service_scaffolds_cleanly(tmp_path):
    """The shop's own IDL (includes, maps of structs, several services per file) as input."""
    from soa.scaffolding.new import plan
    from soa import idl as soa_idl

    shutil.copytree(Path(__file__).resolve().parent.parent / "idl", tmp_path / "idl")
    generated = []
    for path in sorted((tmp_path / "idl").glob("*.thrift")):
        module = soa_idl.load(path)
        for service in soa_idl.service_names(module):
            name = f"{path.stem}-{service.lower()}"  # long names, to test the wrapping
            plan(name, path, tmp_path, thrift_service=service).write()
            generated.append((name, module, service))
    assert len(generated) >= 5
    ruff = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--extend-select", "E501",
                           "services", "tests"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    config = load_config(tmp_path / "soa.yaml")
    for name, module, service in generated:
        pkg = name.replace("-", "_")
        handler = import_file(tmp_path / "services" / pkg / "handler.py", f"shop_{pkg}")
        cls = getattr(handler, config.service(name).handler.split(":")[1])
        methods = soa_idl.methods(soa_idl.find_service(module, service))
        assert [m for m in methods if callable(getattr(cls, m, None))] == methods
        for method in methods:
            args = getattr(soa_idl.find_service(module, service), f"{method}_args").thrift_spec
            params = list(inspect.signature(getattr(cls, method)).parameters)[1:]
            assert params == [args[fid][1] for fid in sorted(args)], (name, method)
