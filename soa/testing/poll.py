"""Polling with a deadline, instead of sleeping and hoping."""

import time


def wait_until(condition, timeout=10.0, interval=0.02, message=None):
    """Call ``condition()`` until it returns a truthy value, which is returned.

    Raises ``AssertionError`` naming ``message`` (or the condition) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # a condition may fail until the thing it checks exists
            last_error = e
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", "condition")
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
