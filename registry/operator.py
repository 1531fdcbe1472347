"""Operator fields of a registry value: drain, undrain and weight (SCHEMA.md, "Operator fields").

An operator takes an instance out of traffic by writing ``weight: 0`` with ``"drained": true``
and the weight it had in ``"drained_weight"``; every reader already gives weight 0 no traffic.
These functions work on the value as a plain dict (a parsed JSON object) and return a new dict;
they never do I/O. ``adopt`` (with ``same_instance``) is what the instance's own registrar uses
to keep an operator's change when it writes its key again.
"""

import json

DRAINED = "drained"
DRAINED_WEIGHT = "drained_weight"
DEFAULT_WEIGHT = 100
FIELDS = ("weight", DRAINED, DRAINED_WEIGHT)


def is_drained(data):
    return data.get(DRAINED) is True


def remembered_weight(data):
    """The weight a drained value returns to (its ``drained_weight``, else 100)."""
    weight = data.get(DRAINED_WEIGHT)
    if type(weight) is int and weight >= 0:
        return weight
    return DEFAULT_WEIGHT


def drain(data):
    """Weight 0, remembering the current weight. A drained value is returned unchanged."""
    if is_drained(data):
        return dict(data)
    weight = data.get("weight")
    if type(weight) is not int or weight < 0:
        weight = DEFAULT_WEIGHT
    return {**data, "weight": 0, DRAINED: True, DRAINED_WEIGHT: weight}


def undrain(data):
    """Back to the remembered weight, without the drain fields. An undrained value is returned
    unchanged (but without stray drain fields)."""
    out = {k: v for k, v in data.items() if k not in (DRAINED, DRAINED_WEIGHT)}
    if is_drained(data):
        out["weight"] = remembered_weight(data)
    return out


def reweight(data, weight):
    """Set the weight. A drained value stays drained and returns to ``weight`` on undrain."""
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    if is_drained(data):
        return {**data, DRAINED_WEIGHT: weight}
    return {**data, "weight": weight}


def adopt(own, written):
    """``own`` (the registrar's value) with the operator fields of ``written`` (what is now in
    etcd): the weight, and the drain fields when present."""
    out = {k: v for k, v in own.items() if k not in (DRAINED, DRAINED_WEIGHT)}
    for name in FIELDS:
        if name in written:
            out[name] = written[name]
    return out


def same_instance(own, written):
    """Whether ``written`` is the registration ``own`` (edited), not another process's value
    at the same address: the same ``id``, or without ids the same ``pid`` and ``started_at``."""
    if own.get("id"):
        return written.get("id") == own.get("id")
    return (written.get("pid"), written.get("started_at")) == (own.get("pid"),
                                                              own.get("started_at"))


def encode(data):
    """A value as the registrar writes it: compact JSON with sorted keys, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
