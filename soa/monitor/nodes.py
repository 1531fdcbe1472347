"""The rule language's tree: frozen nodes built by ``expr.parse`` and read by ``evaluate``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str
    pattern: object = None  # compiled regex for =~ and !~

    def matches(self, labels):
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple = ()

    def matches(self, labels):
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Detect:
    function: str  # val count exist empty
    selector: Selector
    window: float = 0.0  # seconds, count() only


@dataclass(frozen=True)
class Aggregate:
    op: str  # sum avg max min
    expr: object
    by: tuple = ()


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / == != < <= > >= and or
    left: object
    right: object


@dataclass(frozen=True)
class Unary:
    op: str  # - not
    operand: object


def walk(node):
    """Every node of the tree, parents first."""
    yield node
    if isinstance(node, Aggregate):
        yield from walk(node.expr)
    elif isinstance(node, Binary):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Unary):
        yield from walk(node.operand)


def selectors(node):
    """Every selector in the tree, in order (the monitor learns the services rules name)."""
    return [n.selector for n in walk(node) if isinstance(n, Detect)]


def longest_window(node):
    """The longest ``count()`` window in the tree, in seconds (0 without one)."""
    return max([n.window for n in walk(node) if isinstance(n, Detect)] + [0.0])
