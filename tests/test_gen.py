"""``soa gen go|php|node``: the Apache compiler's output, laid out so each ecosystem can use it.

The Go module is built and vetted (dependencies from the Go module proxy), the npm package is
installed and required by node, and every PHP file passes ``php -l`` and sits where its PSR-4
mapping says. Missing toolchains fail these tests; they come from ``bash .ci/ensure-tools``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from soa.scaffolding.gen import compiler_version
from soa.testing.tools import require_tool as tool

SOA = str(Path(sys.executable).parent / "soa")

COMMON_IDL = """\
namespace go acme.common
namespace php Acme.Common
namespace js acme.common

/** An amount in cents. */
struct Money {
  1: required i64 cents,
  2: required string currency,
}

exception NotFound {
  1: string what,
}
"""

SHOP_IDL = """\
include "common.thrift"

namespace go acme.shop
namespace php Acme.Shop
namespace js acme.shop

enum Color {
  RED = 1,
  BLUE = 2,
}

struct Item {
  1: required string sku,
  2: common.Money price,
  3: list<Color> colors,
  4: map<string, string> attributes,
}

/** A tiny shop. */
service ShopService {
  string ping(),
  Item get_item(1: string sku) throws (1: common.NotFound not_found),
  list<Item> list_items(1: i32 offset, 2: i32 limit),
  oneway void touch(1: string sku),
}
"""


def run(args, cwd, timeout=120, env=None):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


@pytest.fixture
def idl(tmp_path):
    tool("thrift")
    folder = tmp_path / "idl"
    folder.mkdir()
    (folder / "common.thrift").write_text(COMMON_IDL)
    (folder / "shop.thrift").write_text(SHOP_IDL)
    return folder / "shop.thrift"


def gen(idl, language, out, *extra):
    return run([SOA, "gen", language, "--idl", str(idl), "--out", str(out), *extra],
               cwd=idl.parent.parent)


def test_go_module_builds_and_vets(idl, tmp_path):
    go = tool("go")
    out = tmp_path / "go"
    proc = gen(idl, "go", out, "--module", "example.com/acme/client")
    assert "wrote go.mod" in proc.stdout
    mod = (out / "go.mod").read_text()
    assert "module example.com/acme/client\n" in mod
    assert f"require github.com/apache/thrift v{compiler_version()}\n" in mod
    assert (out / "acme" / "shop" / "shop.go").is_file()
    assert (out / "acme" / "common" / "common.go").is_file()
    shop_go = (out / "acme" / "shop" / "shop.go").read_text()
    assert '"example.com/acme/client/acme/common"' in shop_go
    assert not list(out.rglob("*-remote"))

    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    run([go, "build", "./..."], cwd=out, timeout=300, env=env)
    run([go, "vet", "./..."], cwd=out, timeout=300, env=env)


def test_node_package_installs_and_loads(idl, tmp_path):
    npm, node = tool("npm"), tool("node")
    out = tmp_path / "node"
    gen(idl, "node", out, "--package", "acme-shop-client")
    package = json.loads((out / "package.json").read_text())
    assert package["name"] == "acme-shop-client"
    assert package["dependencies"] == {"thrift": f"^{compiler_version()}"}
    assert (out / "gen-nodejs" / "ShopService.js").is_file()

    run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=out, timeout=300)
    script = (
        "const pkg = require('./');"
        "const shop = require('./gen-nodejs/shop_types');"
        "const item = new shop.Item({sku: 'A-1', colors: [shop.Color.RED]});"
        "console.log(JSON.stringify({client: typeof pkg.ShopService.Client,"
        " modules: Object.keys(pkg).sort(), sku: item.sku,"
        " thrift: require('thrift/package.json').version}));"
    )
    result = json.loads(run([node, "-e", script], cwd=out).stdout)
    assert result["client"] == "function"
    assert result["modules"] == ["ShopService", "common_types", "shop_types"]
    assert result["sku"] == "A-1"
    assert result["thrift"].startswith(compiler_version().rsplit(".", 1)[0] + ".")


def test_php_package_lints_and_follows_psr4(idl, tmp_path):
    php = tool("php")
    out = tmp_path / "php"
    gen(idl, "php", out, "--package", "acme/shop-client")
    composer = json.loads((out / "composer.json").read_text())
    assert composer["name"] == "acme/shop-client"
    assert composer["require"]["apache/thrift"] == f"^{compiler_version()}"
    psr4 = composer["autoload"]["psr-4"]
    assert psr4 == {"Acme\\Common\\": "src/Acme/Common/", "Acme\\Shop\\": "src/Acme/Shop/"}

    files = sorted(out.rglob("*.php"))
    assert len(files) > 5
    for path in files:
        run([php, "-l", str(path)], cwd=out, timeout=60)
        text = path.read_text()
        namespace = re.search(r"^namespace ([\w\\]+);", text, re.M).group(1)
        declared = re.search(r"^(?:final |abstract )?(?:class|interface) (\w+)", text, re.M)
        assert declared and declared.group(1) == path.stem, path  # one class per file, PSR-4
        prefix = namespace + "\\"
        assert prefix in psr4, (path, namespace)
        assert path.parent == out / psr4[prefix].rstrip("/"), path


def test_regenerating_replaces_code_and_keeps_the_manifest(idl, tmp_path):
    out = tmp_path / "node"
    gen(idl, "node", out)
    (out / "package.json").write_text('{"name": "mine", "dependencies": {"thrift": "^0.17.0"}}')
    (out / "gen-nodejs" / "stale.js").write_text("// from an older IDL\n")
    proc = gen(idl, "node", out)
    assert "kept package.json" in proc.stdout
    assert json.loads((out / "package.json").read_text())["name"] == "mine"
    assert not (out / "gen-nodejs" / "stale.js").exists()
    assert (out / "gen-nodejs" / "ShopService.js").is_file()


def test_missing_compiler_says_how_to_install(idl, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    proc = subprocess.run([SOA, "gen", "go", "--idl", str(idl), "--out", str(tmp_path / "o"),
                           "--module", "x.org/y"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "apt-get install thrift-compiler" in lines[0]


def test_bad_idl_names_file_and_line(tmp_path):
    tool("thrift")
    bad = tmp_path / "bad.thrift"
    bad.write_text("struct A {\n  1: string a,\n  2: strin b,\n}\n")
    proc = subprocess.run([SOA, "gen", "node", "--idl", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:3:" in lines[0], proc.stderr


def test_go_needs_a_module_path(idl, tmp_path):
    proc = subprocess.run([SOA, "gen", "go", "--idl", str(idl), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--module" in proc.stderr


def test_generated_code_carries_the_service_identity(idl, tmp_path):
    """soa gen writes the soa name and idl_hash the plugins compare with the registry's."""
    from soa import idl as soa_idl

    want = soa_idl.idl_hash(soa_idl.find_service(soa_idl.load(idl), "ShopService"))
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", want)

    gen(idl, "go", tmp_path / "go", "--module", "example.com/acme/client")
    go_file = (tmp_path / "go" / "acme" / "shop" / "soa_idl.go").read_text()
    assert "package shop\n" in go_file
    assert 'const SoaService = "shop"\n' in go_file
    assert f'const SoaIDLHash = "{want}"\n' in go_file
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    probe = tmp_path / "go" / "cmd" / "probe"
    probe.mkdir(parents=True)
    (probe / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/acme/client/acme/shop"\n)\n\n'
        'func main() { fmt.Println(shop.SoaService, shop.SoaIDLHash) }\n')
    out = run([tool("go"), "run", "./cmd/probe"], cwd=tmp_path / "go", timeout=300, env=env)
    assert out.stdout.split() == ["shop", want]

    gen(idl, "node", tmp_path / "node", "--name", "acme-shop")
    script = "const s = require('./soa_idl.js'); console.log(JSON.stringify(s));"
    node_out = run([tool("node"), "-e", script], cwd=tmp_path / "node").stdout
    assert json.loads(node_out) == {"service": "acme-shop", "idlHash": want}

    gen(idl, "php", tmp_path / "php")
    php_file = tmp_path / "php" / "src" / "Acme" / "Shop" / "SoaIdl.php"
    script = (f"require '{php_file}'; echo \\Acme\\Shop\\SoaIdl::SERVICE, ' ',"
              " \\Acme\\Shop\\SoaIdl::IDL_HASH;")
    assert run([tool("php"), "-r", script], cwd=tmp_path).stdout.split() == ["shop", want]


def test_several_services_need_a_choice(tmp_path):
    tool("thrift")
    two = tmp_path / "two.thrift"
    two.write_text("service AService { void a() }\nservice BService { void b() }\n")
    proc = subprocess.run([SOA, "gen", "node", "--idl", str(two), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "--service" in proc.stderr, proc.stderr
    gen(two, "node", tmp_path / "o", "--service", "BService")
    text = (tmp_path / "o" / "soa_idl.js").read_text()
    assert 'service: "b"' in text
