"""The framework holds no shop code: nothing in soa/ or registry/ names the shop's services."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOP = re.compile(r"\b(catalog|inventory|flash_?sale|bigtap|mailer)\b", re.I)
# "order" and "notify" are also English words; as services they are names in a command, a
# key, a string or a file.
ORDER = re.compile(r"(services[./](order|notify)\b|\b(order|notify)\.thrift\b|"
                   r"\border\.\w+\(|\bsoa \w+(?: \w+)? (order|notify)\b|"
                   r"[\"'](order|notify)[\"'])")


def framework_files():
    for folder in ("soa", "registry"):
        yield from (p for p in (ROOT / folder).rglob("*")
                    if p.is_file() and p.suffix in (".py", ".tmpl") and "__pycache__" not in
                    p.parts)


def test_the_framework_names_no_shop_service():
    found = []
    for path in framework_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SHOP.search(line) or ORDER.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "shop names in the framework:\n" + "\n".join(found)


def test_the_check_would_catch_a_mention():
    assert SHOP.search("client('catalog')") and ORDER.search('soa serve order --port 0')
    assert ORDER.search('client("notify")') and ORDER.search("idl/notify.thrift")
    assert not ORDER.search("arguments in IDL order") and not SHOP.search("category")
    assert not ORDER.search("evaluate the rules, notify")
