"""SIGTERM/SIGINT: the first one stops gracefully, a second one forces the exit."""

import logging
import os
import signal

import gevent

log = logging.getLogger("soa.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def forced_exit(signum):
    """Exit now, without draining: ``128 + signum``, as a shell reports a signal death."""
    log.warning("second %s: exiting now", signal.Signals(signum).name)
    logging.shutdown()
    os._exit(128 + signum)


def on_stop_signals(graceful, forced=forced_exit):
    """Call ``graceful(signum)`` in a new greenlet on the first stop signal, ``forced(signum)``
    (in the hub) on the next one. Main thread only. Returns a function that uninstalls both."""
    received = []

    def handle(signum):
        received.append(signum)
        if len(received) == 1:
            log.info("%s: stopping gracefully (again to force)", signal.Signals(signum).name)
            gevent.spawn(graceful, signum)
        else:
            forced(signum)

    handles = [gevent.signal_handler(sig, handle, sig) for sig in STOP_SIGNALS]

    def uninstall():
        for h in handles:
            h.cancel()

    return uninstall
