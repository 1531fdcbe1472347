"""What an expression is worth at one instant: the detection functions and the operators.

A value is a number (``float``) or a ``Vector`` (labels -> number, one element per series or per
group). ``evaluate(node, store, now)`` never raises for data reasons: missing series give empty
vectors, division by zero gives NaN.

- ``val(s)``: a vector of the latest sample of every *present* series matching ``s``.
- ``count(s, w)``: a vector with one element per matching series that has at least one sample in
  the window ``(now - w, now]``. For a gauge, the number of those samples. For a counter (a
  ``_total``, ``_count``, ``_sum`` or ``_bucket`` series), its increase: the sum of the rises
  between consecutive samples, starting from the last sample at or before ``now - w`` when there
  is one (else from the first sample in the window), where a fall is a counter reset and counts
  the new value whole.
- ``exist(s)``: 1 when any present series matches, else 0; ``empty(s)`` is the opposite.
- ``+ - * /``: number with number; vector with number (each element); vector with vector (elements
  with identical labels, the others dropped). ``x / 0`` is NaN.
- comparisons: number with number gives 1 or 0; with a vector they keep the elements for which the
  comparison holds, with their (left-hand vector's) values. A comparison with NaN never holds.
- ``sum/avg/max/min(e) by (l...)``: one element per distinct value of the ``by`` labels (a label a
  series lacks is left out), one element with no labels without ``by``; an empty vector gives an
  empty vector. A number is treated as a one-element vector.
- ``a and b``: ``b`` if ``a`` is true, else ``a``; ``a or b``: ``a`` if true, else ``b``;
  ``not a``: 1 if ``a`` is false, else 0. A vector is true when it has an element; a number when it
  is neither 0 nor NaN.
"""

import math
import operator

from .nodes import Aggregate, Binary, Detect, Number, Unary
from .series import COUNTER


class Vector(dict):
    """labels (a sorted tuple of pairs) -> value."""


_ARITHMETIC = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: math.nan if b == 0 else a / b,
}
_COMPARE = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def truth(value):
    if isinstance(value, Vector):
        return len(value) > 0
    return not (value == 0 or math.isnan(value))


def evaluate(node, store, now):
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Detect):
        return _detect(node, store, now)
    if isinstance(node, Aggregate):
        return _aggregate(node, evaluate(node.expr, store, now))
    if isinstance(node, Unary):
        value = evaluate(node.operand, store, now)
        if node.op == "not":
            return 0.0 if truth(value) else 1.0
        if isinstance(value, Vector):
            return Vector((k, -v) for k, v in value.items())
        return -value
    if isinstance(node, Binary):
        left = evaluate(node.left, store, now)
        if node.op == "and":
            return evaluate(node.right, store, now) if truth(left) else left
        if node.op == "or":
            return left if truth(left) else evaluate(node.right, store, now)
        right = evaluate(node.right, store, now)
        if node.op in _COMPARE:
            return _compare(_COMPARE[node.op], left, right)
        return _combine(_ARITHMETIC[node.op], left, right)
    raise TypeError(f"not an expression node: {node!r}")


def _detect(node, store, now):
    matched = store.select(node.selector)
    present = [s for s in matched if s.present and s.samples]
    if node.function == "exist":
        return 1.0 if present else 0.0
    if node.function == "empty":
        return 0.0 if present else 1.0
    if node.function == "val":
        return Vector((s.labels, s.samples[-1][1]) for s in present)
    out = Vector()
    start = now - node.window
    for s in matched:
        window = [v for t, v in s.samples if start < t <= now]
        if not window:
            continue
        if s.kind != COUNTER:
            out[s.labels] = float(len(window))
            continue
        baseline = [v for t, v in s.samples if t <= start]
        out[s.labels] = increase(baseline[-1:] + window)
    return out


def increase(values):
    """The increase of a counter over consecutive ``values``; a fall is a reset to 0."""
    total = 0.0
    for previous, current in zip(values, values[1:]):
        total += current - previous if current >= previous else current
    return total


def _combine(op, left, right):
    if isinstance(left, Vector) and isinstance(right, Vector):
        return Vector((k, op(v, right[k])) for k, v in left.items() if k in right)
    if isinstance(left, Vector):
        return Vector((k, op(v, right)) for k, v in left.items())
    if isinstance(right, Vector):
        return Vector((k, op(left, v)) for k, v in right.items())
    return op(left, right)


def _holds(op, a, b):
    return not (math.isnan(a) or math.isnan(b)) and op(a, b)


def _compare(op, left, right):
    if isinstance(left, Vector) and isinstance(right, Vector):
        return Vector((k, v) for k, v in left.items() if k in right and _holds(op, v, right[k]))
    if isinstance(left, Vector):
        return Vector((k, v) for k, v in left.items() if _holds(op, v, right))
    if isinstance(right, Vector):
        return Vector((k, v) for k, v in right.items() if _holds(op, left, v))
    return 1.0 if _holds(op, left, right) else 0.0


def _aggregate(node, value):
    if not isinstance(value, Vector):
        value = Vector({(): value})
    groups = {}
    for labels, v in value.items():
        kept = dict(labels)
        key = tuple((name, kept[name]) for name in sorted(node.by) if name in kept)
        groups.setdefault(key, []).append(v)
    out = Vector()
    for key, values in groups.items():
        if node.op == "sum":
            out[key] = math.fsum(values)
        elif node.op == "avg":
            out[key] = math.fsum(values) / len(values)
        elif node.op == "max":
            out[key] = max(values)
        else:
            out[key] = min(values)
    return out
