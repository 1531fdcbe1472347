"""Every test closes what it opens: a framework greenlet (registry watch, client sweeper, probe,
pool reader, server) still running after the test's own teardown fails the test, naming it.
A test that configures logging (``soa`` run in-process sets up the root logger) has it put back:
a handler left on a captured stream that pytest then closes turns every later record into a
printed "Logging error" traceback.
"""

import logging

import pytest

from soa.testing import leaks


@pytest.fixture(autouse=True)
def nothing_left_running():
    before = leaks.running()  # what fixtures of wider scope run is theirs, not the test's
    yield
    leaked = leaks.left_running(before)
    if leaked:
        pytest.fail("left running after the test: " + "; ".join(leaked), pytrace=False)


@pytest.fixture(autouse=True)
def logging_put_back():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
