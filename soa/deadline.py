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


# ``set_current(deadline)`` makes ``deadline`` current in this greenlet and returns a token;
# ``reset(token)`` restores what was current before. The variable's own methods, not wrappers:
# the server calls them on every call that carries a deadline.
set_current = _current.set
reset = _current.reset
