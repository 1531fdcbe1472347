"""Tools a test needs from the machine: found on PATH, or the test fails saying how to get them.

A missing tool is a failure, never a skip: ``bash .ci/ensure-tools`` installs the Debian ones
(the Apache Thrift compiler, PHP); Go and Node.js ship with the machine.
"""

import shutil

import pytest


def require_tool(name):
    """The path of ``name`` on PATH; fails the calling test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `bash .ci/ensure-tools` "
                    "(Go and Node.js ship with the machine)", pytrace=False)
    return path
