"""The rule language: a hand-written tokenizer and recursive-descent parser.

``parse(text)`` returns a tree of frozen nodes, or raises ``ExprError`` whose ``column`` (1-based)
points at the offending character. The grammar, loosest binding first::

    expr     := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | cmp
    cmp      := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]     # not chainable
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := "-" unary | primary
    primary  := NUMBER | "(" expr ")" | detect | aggregate
    detect   := ("val" | "exist" | "empty") "(" selector ")" | "count" "(" selector "," window ")"
    aggregate:= AGG ["by" labels] "(" expr ")" ["by" labels]        # AGG: sum avg max min
    labels   := "(" [NAME ("," NAME)*] ")"
    selector := NAME ["{" [matcher ("," matcher)* [","]] "}"]
    matcher  := NAME ("=" | "!=" | "=~" | "!~") STRING
    window   := DURATION | NUMBER                       # 30s 5m 1h 1d 250ms, or seconds

A series is only ever read through a detection function, so a bare selector is an error.
"""

import re
from dataclasses import dataclass

from soa.errors import ConfigError

from .nodes import Aggregate, Binary, Detect, Matcher, Number, Selector, Unary

DETECT = ("val", "count", "exist", "empty")
AGGREGATES = ("sum", "avg", "max", "min")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
KEYWORDS = ("and", "or", "not", "by")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h|d)(?![A-Za-z0-9_]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/<>=(){},])
""", re.VERBOSE)


class ExprError(ConfigError):
    """A rule expression that does not parse; ``column`` is 1-based."""

    def __init__(self, message, column):
        self.column = column
        super().__init__(f"column {column}: {message}")


@dataclass(frozen=True)
class Token:
    kind: str  # number duration name string op end
    text: str
    column: int


def tokenize(text):
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == '"':
                raise ExprError("unterminated string", pos + 1)
            raise ExprError(f"unexpected character {text[pos]!r}", pos + 1)
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def parse(text):
    """The tree of ``text``; ``ExprError`` with the column of the first error."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression", 1)
    return _Parser(tokenize(text)).parse()


def duration(text):
    """``"30s"`` / ``"5m"`` / ``"250ms"`` / a number of seconds -> seconds, or ``None``."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(ms|s|m|h|d)?\s*", str(text))
    if not m:
        return None
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


class _Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.i = 0

    @property
    def token(self):
        return self.tokens[self.i]

    def advance(self):
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, text, kind=None):
        t = self.token
        return t.text == text and t.kind in ((kind,) if kind else ("op", "name"))

    def expect(self, text):
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.advance()

    def error(self, message, token=None):
        token = token or self.token
        found = "end of expression" if token.kind == "end" else repr(token.text)
        return ExprError(f"{message}, found {found}", token.column)

    def parse(self):
        node = self.expr()
        if self.token.kind != "end":
            raise self.error("expected an operator or the end")
        return node

    def expr(self):
        node = self.conjunction()
        while self.at("or", "name"):
            self.advance()
            node = Binary("or", node, self.conjunction())
        return node

    def conjunction(self):
        node = self.negation()
        while self.at("and", "name"):
            self.advance()
            node = Binary("and", node, self.negation())
        return node

    def negation(self):
        if self.at("not", "name"):
            self.advance()
            return Unary("not", self.negation())
        return self.comparison()

    def comparison(self):
        node = self.sum()
        if self.token.kind == "op" and self.token.text in COMPARISONS:
            op = self.advance().text
            node = Binary(op, node, self.sum())
            if self.token.kind == "op" and self.token.text in COMPARISONS:
                raise self.error("comparisons do not chain; use 'and'")
        return node

    def sum(self):
        node = self.product()
        while self.token.kind == "op" and self.token.text in "+-":
            op = self.advance().text
            node = Binary(op, node, self.product())
        return node

    def product(self):
        node = self.unary()
        while self.token.kind == "op" and self.token.text in "*/":
            op = self.advance().text
            node = Binary(op, node, self.unary())
        return node

    def unary(self):
        if self.at("-", "op"):
            self.advance()
            return Unary("-", self.unary())
        return self.primary()

    def primary(self):
        t = self.token
        if t.kind == "number":
            self.advance()
            return Number(float(t.text))
        if t.kind == "duration":
            raise self.error("a duration is only allowed as count()'s window")
        if self.at("(", "op"):
            self.advance()
            node = self.expr()
            self.expect(")")
            return node
        if t.kind == "name" and t.text in DETECT:
            return self.detect()
        if t.kind == "name" and t.text in AGGREGATES:
            return self.aggregate()
        if t.kind == "name" and t.text not in KEYWORDS:
            if self.tokens[self.i + 1].text == "(":
                known = ", ".join(DETECT + AGGREGATES)
                raise self.error(f"unknown function (functions: {known})")
            raise self.error("a series is read through val(), count(), exist() or empty()")
        raise self.error("expected a number, a function or '('")

    def detect(self):
        function = self.advance().text
        self.expect("(")
        selector = self.selector()
        window = 0.0
        if function == "count":
            self.expect(",")
            t = self.token
            if t.kind not in ("duration", "number"):
                raise self.error("expected a window such as 30s, 5m or 1h")
            self.advance()
            window = duration(t.text)
            if window <= 0:
                raise self.error("the window must be longer than 0", t)
        self.expect(")")
        return Detect(function, selector, window)

    def selector(self):
        t = self.token
        if t.kind != "name" or t.text in KEYWORDS or t.text in DETECT + AGGREGATES:
            raise self.error("expected a series name")
        self.advance()
        matchers = []
        if self.at("{", "op"):
            self.advance()
            while not self.at("}", "op"):
                matchers.append(self.matcher())
                if not self.at("}", "op"):
                    self.expect(",")
            self.advance()
        return Selector(t.text, tuple(matchers))

    def matcher(self):
        label = self.token
        if label.kind != "name":
            raise self.error("expected a label name")
        self.advance()
        op = self.token
        if op.kind != "op" or op.text not in ("=", "!=", "=~", "!~"):
            raise self.error("expected =, !=, =~ or !~")
        self.advance()
        value = self.token
        if value.kind != "string":
            raise self.error('expected a "quoted" label value')
        self.advance()
        text = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                      value.text[1:-1])
        pattern = None
        if op.text in ("=~", "!~"):
            try:
                pattern = re.compile(text)
            except re.error as e:
                raise ExprError(f"bad regular expression: {e}", value.column) from e
        return Matcher(label.text, op.text, text, pattern)

    def aggregate(self):
        op = self.advance().text
        by = self.by() if self.at("by", "name") else None
        self.expect("(")
        node = self.expr()
        self.expect(")")
        if self.at("by", "name"):
            if by is not None:
                raise self.error("'by' given twice")
            by = self.by()
        return Aggregate(op, node, tuple(by or ()))

    def by(self):
        self.advance()
        self.expect("(")
        labels = []
        while not self.at(")", "op"):
            t = self.token
            if t.kind != "name":
                raise self.error("expected a label name")
            labels.append(self.advance().text)
            if not self.at(")", "op"):
                self.expect(",")
        self.advance()
        return labels
