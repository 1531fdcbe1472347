"""Adding one service entry to soa.yaml without rewriting the rest of the file.

A YAML round trip through a parser would drop the user's comments and reorder keys, so the entry
is spliced in as text: at the end of the top-level ``services:`` block (or as a new block at the end
of the file), in the indentation the file already uses. The result is re-parsed with
``soa.config.parse_config`` before anything is written, and must hold the same services as before
plus the new one; otherwise ``ConfigError`` is raised and the file is left alone.
"""

import json
import os
import re
import tempfile
from pathlib import Path

from soa.config import parse_config
from soa.errors import ConfigError

HEADER = "# soa configuration: see `soa --help`. Services are added by `soa new`.\n"
_SERVICES = re.compile(r"^services\s*:\s*(?P<rest>[^#]*?)\s*(?:#.*)?$")
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:@+-]*$")


def yaml_scalar(value):
    """A YAML scalar for ``value``: plain when that is unambiguous, else double-quoted."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"unsupported value {value!r}")
    if isinstance(value, int):
        return str(value)
    text = str(value)
    reserved = text.lower() in ("true", "false", "yes", "no", "on", "off", "null", "~")
    if _PLAIN.match(text) and not reserved and not re.fullmatch(r"[0-9.eE+-]+", text):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def add_service(text, name, fields, *, replace=False):
    """Return ``text`` with ``services.<name>`` set to ``fields`` (a dict of scalars).

    ``text`` may be empty (a new file). Raises ``ConfigError`` when the service already exists
    and ``replace`` is false, or when ``services`` is not a block mapping this can edit.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = _services_line(lines)
    if start is None:
        body = lines or [HEADER]
        gap = ["\n"] if body and body[-1].strip() else []
        return "".join(body + gap + ["services:\n"] + _entry(name, fields, 2, 4))
    rest = _SERVICES.match(lines[start].rstrip("\n")).group("rest")
    if rest in ("{}", "null", "~"):
        lines[start] = "services:\n"
    elif rest:
        raise ConfigError(
            "services is written in flow style; add the entry by hand", path="services"
        )
    end = _block_end(lines, start)
    indent, nested = _indents(lines[start + 1 : end])
    existing = _child_span(lines, start + 1, end, name, indent)
    if existing is not None:
        if not replace:
            raise ConfigError(f"service {name!r} already exists (use --force to replace it)",
                              path=f"services.{name}")
        first, last = existing
        return "".join(lines[:first] + _entry(name, fields, indent, nested) + lines[last:])
    return "".join(lines[:end] + _entry(name, fields, indent, nested) + lines[end:])


class YamlEdit:
    """A validated edit of one soa.yaml, not yet written: ``write()`` applies it atomically."""

    def __init__(self, path, text, service):
        self.path = path
        self.text = text
        self.service = service  # the new entry, parsed: a ServiceConfig

    def write(self):
        _write_atomically(self.path, self.text)


def plan_append(path, name, fields, *, replace=False):
    """Prepare adding ``services.<name>`` to the soa.yaml at ``path`` (which may not exist yet).

    The file's folder is the root that relative paths in ``fields`` are resolved against. Raises
    ``ConfigError`` when the current file does not parse or the edited one would not.
    """
    path = Path(path)
    source = str(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    root = path.resolve().parent
    before = parse_config(text, source=source, root=root, check_idl=False) if text else None
    new_text = add_service(text, name, fields, replace=replace)
    try:
        after = parse_config(new_text, source=source, root=root, check_idl=False)
    except ConfigError as e:
        raise ConfigError(f"the edited file would not parse ({e}); left unchanged",
                          source=source) from e
    _check_same(before, after, name, source)
    return YamlEdit(path, new_text, after.services[name])


def append_service(path, name, fields, *, replace=False):
    """Add the entry to the soa.yaml at ``path`` (created when missing); returns its config."""
    edit = plan_append(path, name, fields, replace=replace)
    edit.write()
    return edit.service


def _services_line(lines):
    for i, line in enumerate(lines):
        if _SERVICES.match(line.rstrip("\n")):
            return i
    return None


def _block_end(lines, start):
    """Index just past the last indented, non-blank line of the block opened at ``start``."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if not line[0].isspace():
            break  # a top-level key or a column-0 comment: the next section begins
        end = i + 1
    return end


def _indent_of(line):
    return len(line) - len(line.lstrip(" "))


def _content(line):
    stripped = line.strip()
    return stripped and not stripped.startswith("#")


def _indents(block):
    """(child indent, grandchild indent) used by the existing block; 2 and 4 when it is empty."""
    children = [_indent_of(line) for line in block if _content(line)]
    if not children:
        return 2, 4
    child = children[0]
    deeper = [n for n in children if n > child]
    return child, (deeper[0] if deeper else child * 2)


def _child_span(lines, begin, end, name, indent):
    """The (first, past-last) line indices of child ``name`` in the block, or None."""
    quoted = re.escape(name)
    key = re.compile(rf"^ {{{indent}}}(?:{quoted}|\"{quoted}\"|'{quoted}')\s*:")
    for i in range(begin, end):
        if key.match(lines[i]):
            last = i + 1
            for j in range(i + 1, end):
                if _content(lines[j]) and _indent_of(lines[j]) <= indent:
                    break
                if _content(lines[j]):
                    last = j + 1
            return i, last
    return None


def _entry(name, fields, indent, nested):
    pad, inner = " " * indent, " " * nested
    out = [f"{pad}{yaml_scalar(name)}:\n"]
    out += [f"{inner}{key}: {yaml_scalar(value)}\n" for key, value in fields.items()]
    return out


def _check_same(before, after, name, source):
    old = dict(before.services) if before else {}
    new = dict(after.services)
    new.pop(name, None)
    old.pop(name, None)
    if old != new or name not in after.services:
        raise ConfigError("appending the entry would change other services; left unchanged",
                          source=source)
    if before is not None and (before.etcd, before.client) != (after.etcd, after.client):
        raise ConfigError("appending the entry would change other settings; left unchanged",
                          source=source)


def _write_atomically(path, text):
    folder = path.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".soa.yaml.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
