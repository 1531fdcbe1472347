"""Process entry set-up: the one place soa monkey-patches, and grpc's gevent mode on first use.

Call ``init()`` first thing in a process (the CLI and the pytest plugin do), before other imports
create sockets or threads. It patches the standard library for gevent and makes grpc (used by the
etcd client) cooperate with gevent. Library modules never call it on import.

A program that patches by itself (``from gevent import monkey; monkey.patch_all()``, as every
gevent application and gunicorn's gevent worker do) need not call ``init()``: the registry calls
``cooperative_grpc()`` before its first etcd call, which turns on grpc's gevent mode then. That
is still possible at that point, even if grpc channels were made before: grpc 1.85's gevent mode
only routes completions through the gevent hub from then on. What cannot work is a process
that has not patched the socket module: the etcd client's watch would block the one OS thread
(the hub with it) and every call would hang, so ``cooperative_grpc()`` raises ``SoaError``
saying what to call instead.
"""

import os

from .errors import SoaError

NOT_PATCHED = (
    "soa's registry client runs on gevent, but this process has not monkey-patched the standard"
    " library: call soa.entry.init() (or gevent.monkey.patch_all()) first thing in the program,"
    " before creating soa clients or servers (under gunicorn: the gevent worker, without"
    " --preload)"
)


def init():
    """Patch for gevent and turn on grpc's gevent mode. Idempotent: every step checks the
    process's own state (patched modules, the environment, grpc's flag), so no flag is kept."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    # grpc's fork handlers run in every forked child (subprocesses, pre-fork workers) and can
    # abort it while the parent's etcd watch is active; soa never uses grpc across a fork.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    # grpc's C core reads this once, at import: without it, it writes its own lines (GOAWAY,
    # reconnects) to stderr. GRPC_VERBOSITY=ERROR in the environment brings them back.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    cooperative_grpc()


def cooperative_grpc():
    """Make grpc cooperate with gevent, once per process; the registry calls it before it
    talks to etcd (from whichever greenlet does so first).

    Does nothing when grpc's gevent mode is already on (grpc's own flag is the state, so an
    application that called ``grpc.experimental.gevent.init_gevent()`` itself is respected:
    that function must not run twice). Raises ``SoaError`` when the socket module is not
    patched for gevent: nothing soa could do then would keep the registry from hanging.
    """
    from grpc._cython import cygrpc

    if cygrpc.g_gevent_activated:
        return
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        raise SoaError(NOT_PATCHED)
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()
