"""The structured access log: one line per call on the ``soa.access`` logger.

Each record's message is ``service.method peer duration_ms outcome`` and the same values are
attached as record attributes (``service``, ``method``, ``peer``, ``duration_ms``, ``outcome``)
for structured formatters. When the logger is not enabled for INFO, the middleware costs one
``isEnabledFor`` check per call.
"""

import logging
import time

from .metrics import outcome_of

log = logging.getLogger("soa.access")


def access_log(handler, logger=log):
    """Middleware logging each call that reaches the handler."""
    enabled = logger.isEnabledFor
    perf_counter = time.perf_counter
    INFO = logging.INFO

    def logged(call):
        if not enabled(INFO):
            return handler(call)
        start = perf_counter()
        outcome = "ok"
        try:
            return handler(call)
        except BaseException as e:
            outcome = outcome_of(e)
            raise
        finally:
            ms = (perf_counter() - start) * 1000.0
            fields = {
                "service": call.service,
                "method": call.method,
                "peer": call.peer,
                "duration_ms": round(ms, 3),
                "outcome": outcome,
            }
            logger.info(
                "%s.%s peer=%s duration_ms=%.3f outcome=%s",
                call.service, call.method, call.peer, ms, outcome, extra=fields,
            )

    return logged
