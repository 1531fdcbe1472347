"""Jittered exponential backoff, for loops that retry until they succeed."""

import random


def jittered(attempt, base, cap):
    """The delay before retry number ``attempt`` (0 for the first): a random value between
    half and all of ``min(cap, base * 2**attempt)``."""
    ceiling = min(cap, base * 2 ** min(attempt, 60))
    return random.uniform(ceiling / 2, ceiling)


class Backoff:
    """``next()`` returns the next delay in seconds; ``reset()`` after a success."""

    def __init__(self, base=0.1, cap=5.0):
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self):
        delay = jittered(self.attempt, self.base, self.cap)
        self.attempt += 1
        return delay

    def reset(self):
        self.attempt = 0
