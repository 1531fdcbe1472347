"""A TCP proxy a test controls, to cut one instance off the network without closing anything.

``Proxy(target)`` listens on 127.0.0.1 and forwards every connection to ``target`` (host, port),
both ways. ``partition()`` makes it behave like a network that drops packets: it stops reading
and forwarding on every connection (the bytes stay in the kernel's buffers, nothing is answered)
and stops accepting, so new connections are left in the listen backlog (the kernel completes
their handshake) or, once that is full, their SYNs go unanswered. Nothing is closed, so no peer
sees a FIN or a reset: exactly what a stopped switch port looks like to the client. ``heal()``
resumes forwarding on the connections it held (nothing was lost) and accepting new ones.
``close()`` closes everything. All methods run in the test's greenlets (gevent); the proxy
runs in greenlets of its own.
"""

import socket

import gevent
import gevent.event
import gevent.socket

CHUNK = 65536


class Proxy:
    def __init__(self, target, host="127.0.0.1", port=0, backlog=1):
        self.target = tuple(target)
        self._listener = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(backlog)  # a small backlog: a partition then drops SYNs soon
        self.address = self._listener.getsockname()
        self._open = gevent.event.Event()  # set: forwarding; clear: partitioned
        self._open.set()
        self._sockets = set()
        self._greenlets = set()
        self._closed = False
        self.accepted = 0
        self._spawn(self._accept)

    @property
    def port(self):
        return self.address[1]

    @property
    def partitioned(self):
        return not self._open.is_set()

    def partition(self):
        """Drop everything from now on: stop reading, forwarding and accepting; close nothing."""
        self._open.clear()

    def heal(self):
        """Forward again: the held bytes go on, and new connections are accepted."""
        self._open.set()

    def close(self):
        self._closed = True
        self._open.set()
        gevent.killall(list(self._greenlets), block=True, timeout=2)
        for sock in [self._listener, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass
        self._sockets.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the proxy's own greenlets ----------------------------------------------------------

    def _spawn(self, function, *args):
        greenlet = gevent.spawn(function, *args)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return greenlet

    def _accept(self):
        while not self._closed:
            self._open.wait()
            if self._closed:
                return
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():  # partitioned while accept waited: hold it unread
                self._sockets.add(client)
                self._open.wait()
            self.accepted += 1
            self._spawn(self._connect, client)

    def _connect(self, client):
        self._sockets.add(client)
        try:
            upstream = gevent.socket.create_connection(self.target, timeout=5)
        except OSError:
            self._drop(client)
            return
        upstream.settimeout(None)
        self._sockets.add(upstream)
        pumps = [self._spawn(self._pump, client, upstream),
                 self._spawn(self._pump, upstream, client)]
        try:
            gevent.wait(pumps, count=1)  # one side closed (or failed): end the pair
        finally:
            gevent.killall(pumps)  # before closing, so no greenlet waits on a closed socket
            self._drop(client)
            self._drop(upstream)

    def _pump(self, source, sink):
        """Copy ``source`` to ``sink`` while open; while partitioned neither read nor write."""
        opened = self._open
        try:
            while True:
                opened.wait()
                gevent.socket.wait_read(source.fileno())
                opened.wait()  # partitioned while waiting: leave the bytes where they are
                data = source.recv(CHUNK)
                if not data:
                    return
                opened.wait()
                sink.sendall(data)
        except OSError:
            return

    def _drop(self, sock):
        self._sockets.discard(sock)
        try:
            sock.close()
        except OSError:
            pass
