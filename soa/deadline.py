"""The current call's deadline, carried per greenlet, and how it travels on the wire.

A soa client writes the call's remaining budget into the Thrift message's sequence id:
``0x5D000000 | remaining_ms`` (24 bits of milliseconds, about 4.6 hours at most). A soa server that
sees that marker knows the caller's deadline, drops work that is already late, and makes the
deadline current while the handler runs, so calls the handler makes inherit what is left. Any
other Thrift peer simply echoes the sequence id back, so the encoding is harmless to them.
"""

import contextvars
import time

MARK = 0x5D000000
MASK = 0x00FFFFFF

_current = contextvars.ContextVar("soa_deadline", default=None)


def current():
    """The deadline (a ``time.monotonic()`` instant) of the call being served, or None."""
    return _current.get()


def set_current(deadline):
    """Make ``deadline`` current in this greenlet; returns a token for ``reset``."""
    return _current.set(deadline)


def reset(token):
    _current.reset(token)


def remaining(deadline, now=None):
    """Seconds left until ``deadline`` (may be negative)."""
    return deadline - (time.monotonic() if now is None else now)


def encode_seqid(deadline, now=None):
    """The sequence id that carries ``deadline``; 0 when there is none."""
    if deadline is None:
        return 0
    ms = int(remaining(deadline, now) * 1000)
    return MARK | max(1, min(ms, MASK))


def decode_seqid(seqid, now=None):
    """The deadline a sequence id carries, or None when it carries none."""
    if seqid & ~MASK != MARK:
        return None
    return (time.monotonic() if now is None else now) + (seqid & MASK) / 1000.0
