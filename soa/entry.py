"""Process entry set-up: the one place soa monkey-patches.

Call ``init()`` first thing in a process (the CLI and the pytest plugin do), before other imports
create sockets or threads. It patches the standard library for gevent and makes grpc (used by the
etcd client) cooperate with gevent. Library modules never call it on import.
"""

import os

_done = False


def init():
    global _done
    if _done:
        return
    _done = True
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
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()
