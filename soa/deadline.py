"""The current call's deadline, carried per greenlet.

A soa client sends the call's remaining budget in its THeader metadata (``soa-deadline-ms``, see
``soa.theader``); a soa server drops work that is already late and makes the deadline current
while the handler runs, so calls the handler makes inherit what is left. The sequence id is the
caller's own and carries nothing.
"""

import contextvars

_current = contextvars.ContextVar("soa_deadline", default=None)


def current():
    """The deadline (a ``time.monotonic()`` instant) of the call being served, or None."""
    return _current.get()


def set_current(deadline):
    """Make ``deadline`` current in this greenlet; returns a token for ``reset``."""
    return _current.set(deadline)


def reset(token):
    _current.reset(token)
