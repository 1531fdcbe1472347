"""The shop's IDL (idl/*.thrift): loads with thriftpy2, compiles with the Apache Thrift compiler
for every language soa generates clients for, follows the IDL conventions, and has a stable
``idl_hash``."""

import json
import keyword
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import pytest
import thriftpy2.parser.parser as thrift_parser
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.thrift import TMessageType, TType
from thriftpy2.transport import TMemoryBuffer

from soa import idl
from soa.testing.tools import require_tool

IDL_DIR = Path(__file__).resolve().parent.parent / "idl"
IDL_FILES = sorted(IDL_DIR.glob("*.thrift"))
IDS = [p.name for p in IDL_FILES]

# The services each file must define, with methods they must have. ping comes first everywhere.
EXPECTED = {
    "catalog.thrift": {
        "CatalogService": [
            "get_product",
            "list_products",
            "get_sku",
            "get_prices",
            "upsert_product",
        ],
    },
    "inventory.thrift": {
        "InventoryService": ["set_stock", "allocate", "reserve", "confirm", "release", "get_stock"],
    },
    "order.thrift": {
        "OrderService": ["create_order", "get_order", "cancel_order", "list_orders", "on_event"],
    },
    "flashsale.thrift": {
        "FlashSaleService": ["register_sale", "apply", "purchase", "get_result", "get_sale"],
    },
    "notify.thrift": {
        "NotifyService": ["publish", "subscribe", "unsubscribe", "ack", "deliveries", "stats"],
        "EventSink": ["on_event"],
    },
    "shared.thrift": {},
}

# Mutating calls: their first argument is the idempotency key.
IDEMPOTENT = {
    "upsert_product",
    "set_stock",
    "allocate",
    "reserve",
    "confirm",
    "release",
    "create_order",
    "cancel_order",
    "register_sale",
    "publish",
}

GENERATORS = ["py", "go", "php", "js:node"]


@pytest.fixture(scope="module")
def thrift_bin():
    return require_tool("thrift")


def _compile(thrift_bin, gen, source, out):
    out.mkdir(parents=True, exist_ok=True)
    cmd = [thrift_bin, "-r", "--gen", gen, "-out", str(out), str(source)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def json_docs(thrift_bin, tmp_path_factory):
    """Every IDL file as the Apache compiler's JSON model (it keeps doc comments)."""
    out = tmp_path_factory.mktemp("gen-json")
    docs = {}
    for path in IDL_FILES:
        proc = _compile(thrift_bin, "json", path, out)
        assert proc.returncode == 0, proc.stderr
        docs[path.name] = json.loads((out / f"{path.stem}.json").read_text())
    return docs


def test_every_expected_file_exists():
    assert sorted(EXPECTED) == IDS


@pytest.mark.parametrize("path", IDL_FILES, ids=IDS)
def test_loads_with_thriftpy2_and_defines_its_services(path):
    module = idl.load(path)
    names = idl.service_names(module)
    for service, wanted in EXPECTED.get(path.name, {}).items():
        assert service in names, f"{path.name} does not define {service}"
        methods = idl.methods(idl.find_service(module, service))
        assert methods[0] == "ping", f"{service}: ping must be the first method"
        missing = [m for m in wanted if m not in methods]
        assert not missing, f"{service} lacks {missing}"
        assert idl.idl_hash(idl.find_service(module, service)).startswith("sha256:")
    for service in names:
        assert idl.methods(idl.find_service(module, service))[0] == "ping", service


@pytest.mark.parametrize("gen", GENERATORS)
@pytest.mark.parametrize("path", IDL_FILES, ids=IDS)
def test_compiles_with_apache_thrift(thrift_bin, tmp_path, path, gen):
    proc = _compile(thrift_bin, gen, path, tmp_path)
    assert proc.returncode == 0, f"thrift --gen {gen} {path.name}:\n{proc.stderr}"
    assert "[WARNING" not in proc.stderr, proc.stderr


_IMPORT_AND_PING = """
import importlib, sys
from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport
package, services = sys.argv[1], sys.argv[2:]
importlib.import_module(package + ".ttypes")
importlib.import_module(package + ".constants")
for name in services:
    module = importlib.import_module(package + "." + name)
    buf = TTransport.TMemoryBuffer()
    module.Client(TBinaryProtocol.TBinaryProtocol(buf)).send_ping()
    print(name, buf.getvalue().hex())
"""


@pytest.mark.parametrize("path", IDL_FILES, ids=IDS)
def test_generated_python_imports_with_apache_thrift(thrift_bin, tmp_path, path):
    out = tmp_path / "gen-py"
    proc = _compile(thrift_bin, "py", path, out)
    assert proc.returncode == 0, proc.stderr
    package = re.search(r"^namespace py (\S+)", path.read_text(), re.MULTILINE).group(1)
    services = idl.service_names(idl.load(path))
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT_AND_PING, package, *services],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=out,
    )
    assert run.returncode == 0, run.stderr
    # The Apache-generated client's ping call decodes with thriftpy2: the two agree on the wire.
    lines = dict(line.split() for line in run.stdout.splitlines())
    assert sorted(lines) == services
    for name, hexdata in lines.items():
        proto = TBinaryProtocol(TMemoryBuffer(bytes.fromhex(hexdata)))
        method, kind, _seqid = proto.read_message_begin()
        assert (method, kind) == ("ping", TMessageType.CALL), name


@pytest.mark.parametrize("path", IDL_FILES, ids=IDS)
def test_follows_the_idl_conventions(json_docs, path):
    doc = json_docs[path.name]
    assert {"py", "go", "php", "js"} <= set(doc["namespaces"]), doc["namespaces"]
    problems = []
    for struct in doc["structs"]:
        if not struct.get("doc"):
            problems.append(f"struct {struct['name']} has no doc comment")
        for field in struct["fields"]:
            if keyword.iskeyword(field["name"]):
                problems.append(f"{struct['name']}.{field['name']} is a Python keyword")
    for enum in doc["enums"]:
        if not enum.get("doc"):
            problems.append(f"enum {enum['name']} has no doc comment")
    for service in doc["services"]:
        if not service.get("doc"):
            problems.append(f"service {service['name']} has no doc comment")
        for fn in service["functions"]:
            where = f"{service['name']}.{fn['name']}"
            if not fn.get("doc"):
                problems.append(f"{where} has no doc comment")
            for arg in fn["arguments"]:
                if arg["required"] != "req_out":
                    problems.append(f"{where}({arg['name']}) is {arg['required']}")
                if keyword.iskeyword(arg["name"]):
                    problems.append(f"{where}({arg['name']}) is a Python keyword")
            if fn["name"] in IDEMPOTENT:
                first = fn["arguments"][0]["name"] if fn["arguments"] else None
                if first != "idempotency_key":
                    problems.append(f"{where} must take idempotency_key first")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", IDL_FILES, ids=IDS)
def test_every_exception_carries_an_error_code(path):
    module = idl.load(path)
    exceptions = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and hasattr(value, "thrift_spec")
    ]
    for exc in exceptions:
        spec = exc.thrift_spec
        assert spec[1][:2] == (TType.I32, "code"), f"{exc.__name__}: field 1 must be `code`"
        assert getattr(spec[1][2], "__name__", None) == "ErrorCode", exc.__name__
        assert spec[2][:2] == (TType.STRING, "message"), f"{exc.__name__}: field 2 is `message`"
    if path.name == "shared.thrift":
        names = {exc.__name__ for exc in exceptions}
        assert {"ShopError", "NotFound", "InsufficientStock"} <= names


def _reformat(text):
    """The same IDL with every comment dropped, all on one line, and new comments added."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"(//|#)[^\n]*", " ", text)
    return "# a reformatted copy\n/** new doc */\n" + " ".join(text.split()) + "\n// the end\n"


def _hash(path, service):
    # thriftpy2 caches included files by module name ("shared_thrift") for the whole process,
    # so each copy is loaded against an empty cache to see its own shared.thrift.
    cache = (
        mock.patch.object(thrift_parser, "_thrift_cache", {})
        if hasattr(thrift_parser, "_thrift_cache")
        else nullcontext()
    )
    with cache:
        return idl.idl_hash(idl.find_service(idl.load(path), service))


def _copy_tree(dst, edit=None):
    dst.mkdir()
    for path in IDL_FILES:
        text = path.read_text()
        (dst / path.name).write_text(edit(path.name, text) if edit else text)
    return dst


SERVICES = [(file, service) for file, services in EXPECTED.items() for service in services]


@pytest.mark.parametrize(("file", "service"), SERVICES, ids=[s for _, s in SERVICES])
def test_idl_hash_ignores_formatting_and_comments(tmp_path, file, service):
    original = _copy_tree(tmp_path / "original")
    reformatted = _copy_tree(tmp_path / "reformatted", lambda _name, text: _reformat(text))
    assert (reformatted / file).read_text() != (original / file).read_text()
    expected = _hash(IDL_DIR / file, service)
    assert _hash(original / file, service) == expected
    assert _hash(reformatted / file, service) == expected


# (file edited, old text, new text, service file, service): each edit changes the wire.
WIRE_CHANGES = {
    "method renamed": (
        "order.thrift",
        "Order get_order(",
        "Order fetch_order(",
        "order.thrift",
        "OrderService",
    ),
    "argument id": (
        "catalog.thrift",
        "2: i32 limit)",
        "3: i32 limit)",
        "catalog.thrift",
        "CatalogService",
    ),
    "argument type": (
        "inventory.thrift",
        "4: i32 quantity, 5: string order_id)",
        "4: i64 quantity, 5: string order_id)",
        "inventory.thrift",
        "InventoryService",
    ),
    "result type": (
        "notify.thrift",
        "string publish(",
        "i64 publish(",
        "notify.thrift",
        "NotifyService",
    ),
    "throws added": (
        "notify.thrift",
        "Stats stats(),",
        "Stats stats() throws (1: shared.ShopError err),",
        "notify.thrift",
        "NotifyService",
    ),
    "shared enum value": (
        "shared.thrift",
        "INVALID_STATE = 11,",
        "INVALID_STATE = 12,",
        "flashsale.thrift",
        "FlashSaleService",
    ),
    "shared requiredness": (
        "shared.thrift",
        "2: required string currency",
        "2: optional string currency",
        "catalog.thrift",
        "CatalogService",
    ),
    "shared struct field": (
        "shared.thrift",
        "7: string subscription_id,",
        "7: string subscription_id, 8: i32 shard,",
        "order.thrift",
        "OrderService",
    ),
}


@pytest.mark.parametrize("change", WIRE_CHANGES.values(), ids=WIRE_CHANGES.keys())
def test_idl_hash_changes_with_the_wire(tmp_path, change):
    edited, old, new, file, service = change

    def edit(name, text):
        if name != edited:
            return text
        assert text.count(old) == 1, f"{edited} no longer contains {old!r} exactly once"
        return text.replace(old, new)

    original = _copy_tree(tmp_path / "original")
    changed = _copy_tree(tmp_path / "changed", edit)
    assert _hash(changed / file, service) != _hash(original / file, service)
