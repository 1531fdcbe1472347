"""Children that die with their supervisor, even when it is SIGKILLed.

``guarded(command)`` is ``command`` run through ``python -m soa.orphans PID -- command``: that
wrapper asks Linux to send the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, which
survives ``exec``), checks the parent is still the one that started it (it may have died
before the request took effect), and then ``exec``s the command. So a child deregisters and
drains as on any SIGTERM, whatever happened to ``soa up``. It needs no ``preexec_fn``, which is
unsafe in a process that has threads (grpc's). Elsewhere than Linux the command runs unguarded.
"""

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guarded(command):
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-m", "soa.orphans", str(os.getpid()), "--", *command]


def _die_with(parent):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the supervisor died before the request was in place
        sys.exit(1)


def main(argv):
    parent, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: python -m soa.orphans PARENT_PID -- COMMAND...")
    _die_with(int(parent))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
