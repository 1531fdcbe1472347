"""The call's deadline: its own total timeout, or the inherited deadline when that is earlier.

The deadline covers the whole call, retries included, and travels to a soa server in the call's
THeader metadata (``soa-deadline-ms``, ``soa.theader``), so the server drops work whose caller has
given up and its own nested calls inherit what is left (``soa.deadline.current()``).
"""

import time

from soa import deadline as deadlines


def timeout_middleware(timeout_s, monotonic=time.monotonic,
                       current=deadlines._current.get):  # deadlines.current, minus a call
    def factory(next_handler):
        def set_deadline(call):
            mine = monotonic() + timeout_s
            inherited = current()
            if inherited is not None and inherited < mine:
                mine = inherited
            if call.deadline is None or mine < call.deadline:
                call.deadline = mine
            return next_handler(call)

        return set_deadline

    return factory
