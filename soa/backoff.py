"""Jittered exponential backoff, for loops that retry until they succeed."""

import random


class Backoff:
    """``next()`` returns the next delay in seconds: full jitter over an exponential ceiling."""

    def __init__(self, base=0.1, cap=5.0):
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self):
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self):
        self.attempt = 0
