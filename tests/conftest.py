"""Every test closes what it opens: a framework greenlet (registry watch, client sweeper, probe,
pool reader, server) still running after the test's own teardown fails the test, naming it."""

import pytest

from soa.testing import leaks


@pytest.fixture(autouse=True)
def nothing_left_running():
    before = leaks.running()  # what fixtures of wider scope run is theirs, not the test's
    yield
    leaked = leaks.left_running(before)
    if leaked:
        pytest.fail("left running after the test: " + "; ".join(leaked), pytrace=False)
