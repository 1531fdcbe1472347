"""Doc comments of a Thrift IDL's services and methods, read from the IDL text.

thriftpy2 drops comments and annotations, so this module reads them itself with a small tokenizer:
the comment(s) directly before ``service X`` are the service's doc, and the comment(s) directly
before a method's declaration (its ``oneway`` or return type) are the method's doc. ``/** */``,
``/* */``, ``//`` and ``#`` comments all count; markers such as ``@idempotent`` stay in the text.

- ``method_docs(path) -> {service: {method: doc}}`` (methods in declaration order, ``""`` when
  a method has no doc)
- ``service_docs(path) -> {service: doc}``
- ``has_marker(doc, "idempotent")``: whether ``@idempotent`` appears as a word in the doc
- ``parse(text)``: both, from text, as ``{service: ServiceDoc}``

Includes are not followed; a service's inherited methods are documented in their own file.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

_TOKEN = re.compile(
    r"""
    (?P<comment>/\*.*?\*/|//[^\n]*|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<word>[A-Za-z_][\w.]*)
  | (?P<space>\s+)
  | (?P<punct>.)
    """,
    re.DOTALL | re.VERBOSE,
)


@dataclass
class ServiceDoc:
    name: str
    doc: str = ""
    methods: dict = field(default_factory=dict)


def method_docs(path):
    """``{service: {method: doc}}`` for the services defined in the IDL file at ``path``."""
    return {name: dict(s.methods) for name, s in parse(_read(path)).items()}


def service_docs(path):
    """``{service: doc}`` for the services defined in the IDL file at ``path``."""
    return {name: s.doc for name, s in parse(_read(path)).items()}


def has_marker(doc, marker):
    """Whether ``@marker`` appears in ``doc`` as a whole word."""
    return re.search(rf"(?<![\w@])@{re.escape(marker)}\b", doc or "") is not None


def _read(path):
    return Path(path).read_text(encoding="utf-8")


def clean(comment):
    """The text of one comment without its delimiters and leading ``*`` columns."""
    if comment.startswith("/*"):
        body = comment[2:-2]
        body = body.removeprefix("*")
        lines = [re.sub(r"^\s*\*? ?", "", line) for line in body.splitlines()]
    elif comment.startswith("//"):
        lines = [comment[2:].removeprefix("/").strip()]
    else:
        lines = [comment[1:].strip()]
    return "\n".join(lines).strip()


def _tokens(text):
    """(kind, text) pairs; a comment that starts on the line where the previous token ends is a
    trailing comment (kind ``trailing``), which documents nothing that follows it."""
    line_of_end = -1
    line = 0
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "space":
            line += value.count("\n")
            continue
        if kind == "comment" and line == line_of_end:
            kind = "trailing"
        line += value.count("\n")
        if kind != "comment":
            line_of_end = line
        yield kind, value


def parse(text):
    """``{service: ServiceDoc}`` from IDL text."""
    tokens = [t for t in _tokens(text) if t[0] != "trailing"]
    services = {}
    pending = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "comment":
            pending.append(clean(value))
            i += 1
            continue
        if kind == "word" and value == "service" and i + 1 < len(tokens):
            name = tokens[i + 1][1]
            service = ServiceDoc(name, _join(pending))
            services[name] = service
            i = _service_body(tokens, i + 2, service)
            pending = []
            continue
        if kind == "punct" and value == "{":
            i = _skip_block(tokens, i)
        else:
            i += 1
        pending = []
    return services


def _join(comments):
    return "\n".join(c for c in comments if c)


def _skip_pair(tokens, i, opening, closing):
    """From an ``opening`` punctuation token, the index after its matching ``closing`` one."""
    depth = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "punct" and value == opening:
            depth += 1
        elif kind == "punct" and value == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _skip_block(tokens, i):
    return _skip_pair(tokens, i, "{", "}")


def _skip_parens(tokens, i):
    return _skip_pair(tokens, i, "(", ")")


def _service_body(tokens, i, service):
    """Read methods from after ``service Name`` to the closing ``}``; returns the next index."""
    while i < len(tokens) and tokens[i] != ("punct", "{"):
        i += 1  # "extends Base", annotations
    i += 1
    pending = []
    doc = None  # the doc of the declaration being read, frozen at its first token
    previous = None
    angle = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "comment":
            if doc is None:
                pending.append(clean(value))
            i += 1
            continue
        if kind == "punct" and value == "}":
            return i + 1
        if kind == "punct" and value in "<>":
            angle += 1 if value == "<" else -1  # a comma inside map<K, V> separates nothing
        elif kind == "punct" and value in ",;" and angle == 0:
            doc, pending, previous = None, [], None
            i += 1
            continue
        if doc is None:
            doc = _join(pending)
            pending = []
        if kind == "punct" and value == "(":
            if previous is not None and previous[0] == "word" and previous[1] != "throws":
                name = previous[1]
                service.methods[name] = doc
                i = _skip_parens(tokens, i)
                i = _after_signature(tokens, i)
                doc, pending, previous = None, [], None
                continue
            i = _skip_parens(tokens, i)
            continue
        previous = (kind, value)
        i += 1
    return i


def _after_signature(tokens, i):
    """Skip ``throws (...)`` and annotations ``(...)`` after a method's argument list."""
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "word" and value == "throws":
            i += 1
            continue
        if kind == "punct" and value == "(":
            i = _skip_parens(tokens, i)
            continue
        return i
    return i
