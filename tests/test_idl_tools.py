"""``soa idl check`` (loads with thriftpy2 and the Apache compiler; doc-comment warnings) and
``soa idl diff`` (wire-breaking versus safe changes between two versions of an IDL)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soa.scaffolding.idl_diff import BREAKING, SAFE, diff_files
from soa.testing.tools import require_tool

SOA = str(Path(sys.executable).parent / "soa")

BASE = """\
/** Shared error. */
exception Oops {
  1: string message,
}

enum Color {
  RED = 1,
  BLUE = 2,
}

struct Item {
  1: required string sku,
  2: optional i32 count,
  3: Color color,
  4: list<string> tags,
}

/** Items. */
service ItemService {
  /** One item. */
  Item get(1: string sku) throws (1: Oops oops),
  /** Saves an item. */
  void put(1: Item item),
}
"""


def soa(*args, cwd=None):
    return subprocess.run([SOA, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def thrift_compiler():
    require_tool("thrift")


def line_of(text, needle):
    return text[: text.index(needle)].count("\n") + 1


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- check --------------------------------------------------------------------------------------

def test_check_a_documented_file(tmp_path):
    proc = soa("idl", "check", str(write(tmp_path, "base.thrift", BASE)))
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stdout
    assert "ok (1 service(s), 0 warning(s))" in proc.stdout


def test_check_warns_about_missing_doc_comments(tmp_path):
    text = BASE.replace("/** Items. */\n", "").replace("  /** Saves an item. */\n", "")
    path = write(tmp_path, "undocumented.thrift", text)
    proc = soa("idl", "check", str(path))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if "warning:" in line]
    assert warnings == [
        f"{path}:{line_of(text, 'service ItemService')}: warning: service ItemService has no"
        " doc comment",
        f"{path}:{line_of(text, 'void put')}: warning: method ItemService.put has no doc comment",
    ]
    strict = soa("idl", "check", "--strict", str(path))
    assert strict.returncode == 1 and "2 doc comment warning(s)" in strict.stderr

    data = json.loads(soa("idl", "check", "--json", str(path)).stdout)
    assert data["services"] == ["ItemService"]
    assert [w["what"] for w in data["warnings"]] == [
        "service ItemService has no doc comment", "method ItemService.put has no doc comment"]


def test_check_fails_when_thriftpy2_cannot_load(tmp_path):
    text = BASE.replace("Item get(", "Itme get(")
    path = write(tmp_path, "bad.thrift", text)
    proc = soa("idl", "check", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:{line_of(text, 'Itme')}:" in lines[0], proc.stderr


def test_check_fails_when_the_apache_compiler_rejects_it(tmp_path):
    # thriftpy2 accepts a oneway method with a throws clause; the Apache compiler does not.
    text = BASE.replace("  void put(1: Item item),",
                        "  oneway void put(1: Item item) throws (1: Oops oops),")
    path = write(tmp_path, "oneway.thrift", text)
    proc = soa("idl", "check", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{path}:{line_of(text, 'oneway')}:" in lines[0]
    assert "Oneway methods can't throw exceptions" in lines[0]


def test_check_reports_compiler_warnings(tmp_path):
    text = BASE.replace("  void put(1: Item item),", "  oneway string put(1: Item item),")
    path = write(tmp_path, "warn.thrift", text)
    proc = soa("idl", "check", str(path))
    assert proc.returncode == 0, proc.stderr
    expected = f"{path}:{line_of(text, 'oneway')}: warning: Oneway methods should return void."
    assert expected in proc.stdout.splitlines()


def test_check_with_include_dirs(tmp_path):
    write(tmp_path, "common/types.thrift", "/** Money. */\nstruct Money {\n  1: i64 cents,\n}\n")
    user = write(tmp_path, "svc/price.thrift", 'include "types.thrift"\n'
                 "/** Prices. */\nservice Prices {\n  /** One. */\n  types.Money get(),\n}\n")
    proc = soa("idl", "check", "-I", str(tmp_path / "common"), str(user))
    assert proc.returncode == 0, proc.stderr
    assert "ok (1 service(s), 0 warning(s))" in proc.stdout


def test_check_the_shop_idl():
    idl = Path(__file__).resolve().parent.parent / "idl"
    files = sorted(str(p) for p in idl.glob("*.thrift"))
    proc = soa("idl", "check", "--json", *files)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(files)


# --- diff ---------------------------------------------------------------------------------------

def changes(tmp_path, old, new):
    a = write(tmp_path, "old/x.thrift", old)
    b = write(tmp_path, "new/x.thrift", new)
    return [(c.level, c.where, c.what) for c in diff_files(a, b)]


BREAKING_CASES = {
    "removed method": (
        ("  /** Saves an item. */\n  void put(1: Item item),\n", ""),
        ("ItemService.put", "method removed")),
    "removed field": (
        ("  4: list<string> tags,\n", ""),
        ("struct Item", "field 4 (tags) removed")),
    "changed field id": (
        ("  4: list<string> tags,", "  5: list<string> tags,"),
        ("struct Item", "field tags: id changed 4 -> 5")),
    "changed field type": (
        ("  2: optional i32 count,", "  2: optional i64 count,"),
        ("struct Item", "field 2 (count): type changed i32 -> i64")),
    "changed element type": (
        ("  4: list<string> tags,", "  4: set<string> tags,"),
        ("struct Item", "field 4 (tags): type changed list<string> -> set<string>")),
    "optional made required": (
        ("  2: optional i32 count,", "  2: required i32 count,"),
        ("struct Item", "field 2 (count): made required")),
    "new required field": (
        ("  4: list<string> tags,", "  4: list<string> tags,\n  5: required bool fresh,"),
        ("struct Item", "new required field 5 (fresh: bool)")),
    "removed enum value": (
        ("  BLUE = 2,\n", ""),
        ("enum Color", "value BLUE = 2 removed")),
    "changed enum value": (
        ("  BLUE = 2,", "  BLUE = 3,"),
        ("enum Color", "value BLUE changed 2 -> 3")),
    "changed declared exceptions": (
        (" throws (1: Oops oops)", ""),
        ("ItemService.get", "declared exceptions changed: (1: Oops) -> (none)")),
    "changed exception struct": (
        ("  1: string message,", "  1: string message,\n  2: i32 code,"),
        ("exception Oops", "new optional field 2 (code: i32)")),
    "changed argument type": (
        ("Item get(1: string sku)", "Item get(1: i64 sku)"),
        ("ItemService.get", "argument 1 (sku): type changed string -> i64")),
    "changed return type": (
        ("  Item get(", "  list<Item> get("),
        ("ItemService.get", "return type changed: Item -> list<Item>")),
    "oneway changed": (
        ("  void put(1: Item item),", "  oneway void put(1: Item item),"),
        ("ItemService.put", "oneway changed")),
    "removed service": (
        (BASE[BASE.index("/** Items. */"):], ""),
        ("service ItemService", "service removed")),
}


@pytest.mark.parametrize("case", sorted(BREAKING_CASES))
def test_breaking_changes(tmp_path, case):
    (old, new), (where, what) = BREAKING_CASES[case]
    assert old in BASE
    found = changes(tmp_path, BASE, BASE.replace(old, new))
    assert (BREAKING, where, what) in found, found


SAFE_CASES = {
    "new optional field": (
        ("  4: list<string> tags,", "  4: list<string> tags,\n  5: optional string note,"),
        ("struct Item", "new optional field 5 (note: string)")),
    "new method": (
        ("  void put(1: Item item),", "  void put(1: Item item),\n  /** Drop. */\n  void drop(),"),
        ("ItemService.drop", "new method")),
    "new enum value": (
        ("  BLUE = 2,", "  BLUE = 2,\n  GREEN = 3,"),
        ("enum Color", "new value GREEN = 3")),
    "renamed field": (
        ("  4: list<string> tags,", "  4: list<string> labels,"),
        ("struct Item", "field 4 (tags): renamed to labels")),
    "new optional argument": (
        ("void put(1: Item item)", "void put(1: Item item, 2: bool force)"),
        ("ItemService.put", "new optional argument 2 (force: bool)")),
    "new service": (
        ("", "\nservice Other {\n  string ping(),\n}\n"),
        ("service Other", "new service")),
}


@pytest.mark.parametrize("case", sorted(SAFE_CASES))
def test_safe_changes(tmp_path, case):
    (old, new), (where, what) = SAFE_CASES[case]
    new_text = BASE + new if not old else BASE.replace(old, new)
    found = changes(tmp_path, BASE, new_text)
    assert found == [(SAFE, where, what)], found


def test_comments_and_formatting_are_no_change(tmp_path):
    reformatted = "// a new comment\n" + BASE.replace("/** One item. */", "/** Another doc. */")
    assert changes(tmp_path, BASE, reformatted.replace("  ", "    ")) == []


def test_typedefs_resolve_to_their_wire_type(tmp_path):
    new = "typedef string Sku\n" + BASE.replace("Item get(1: string sku)", "Item get(1: Sku sku)")
    assert changes(tmp_path, BASE, new) == []


def test_included_types_are_compared(tmp_path):
    common = "struct Money {\n  1: required i64 cents,\n}\n"
    user = 'include "common.thrift"\nstruct Price {\n  1: common.Money money,\n}\n'
    write(tmp_path, "old/common.thrift", common)
    write(tmp_path, "new/common.thrift", common.replace("i64 cents", "i32 cents"))
    found = changes(tmp_path, user, user)
    assert found == [(BREAKING, "struct common.Money", "field 1 (cents): type changed i64 -> i32")]


def test_diff_cli_exit_codes_and_json(tmp_path):
    old = write(tmp_path, "old/x.thrift", BASE)
    same = soa("idl", "diff", str(old), str(old))
    assert same.returncode == 0 and "0 breaking, 0 safe change(s)" in same.stdout

    new = write(tmp_path, "new/x.thrift", BASE.replace("  BLUE = 2,", "  BLUE = 2,\n  GREEN = 3,")
                .replace("  4: list<string> tags,\n", ""))
    proc = soa("idl", "diff", str(old), str(new))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        "BREAKING  struct Item: field 4 (tags) removed",
        "safe      enum Color: new value GREEN = 3",
        "1 breaking, 1 safe change(s)",
    ]
    lines = [json.loads(line) for line in soa("idl", "diff", "--json", str(old), str(new))
             .stdout.splitlines()]
    assert lines == [
        {"level": "breaking", "where": "struct Item", "what": "field 4 (tags) removed"},
        {"level": "safe", "where": "enum Color", "what": "new value GREEN = 3"},
    ]

    more = BASE.replace("  BLUE = 2,", "  BLUE = 2,\n  GREEN = 3,")
    safe = write(tmp_path, "safe/x.thrift", more)
    assert soa("idl", "diff", str(old), str(safe)).returncode == 0


def test_diff_with_include_dirs_and_a_bad_file(tmp_path):
    write(tmp_path, "idl/common.thrift", "struct Money {\n  1: i64 cents,\n}\n")
    user = 'include "common.thrift"\nstruct Price {\n  1: common.Money money,\n}\n'
    old = write(tmp_path, "elsewhere/price.thrift", user)  # e.g. from `git show HEAD:...`
    new = write(tmp_path, "idl/price.thrift", user)
    proc = soa("idl", "diff", "-I", str(tmp_path / "idl"), str(old), str(new))
    assert proc.returncode == 0, proc.stderr

    bad = write(tmp_path, "bad.thrift", "struct {\n")
    proc = soa("idl", "diff", "-I", str(tmp_path / "idl"), str(old), str(bad))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr
