"""``ServedBy``: a client middleware that records which instance served each call.

Add it with ``soa.client(name, middleware=[served])``; then ``served.by_service[service]`` counts
calls per instance address and ``served.last[service]`` is the address of the latest one.
"""

from collections import Counter, defaultdict


class ServedBy:
    def __init__(self):
        self.by_service = defaultdict(Counter)
        self.last = {}

    def calls(self, service):
        """``{address: calls}`` for one service."""
        return dict(self.by_service[service])

    def __call__(self, handler):
        def record(call):
            try:
                return handler(call)
            finally:
                if call.peer:
                    self.by_service[call.service][call.peer] += 1
                    self.last[call.service] = call.peer

        return record
