"""Outlier ejection: take an instance out of rotation after a connect failure or a timeout,
before its lease expires, and let it back in only after a probe answers.

``Ejector.middleware`` wraps each attempt (inside the retry middleware, so every attempt counts).
A ``ConnectError`` or an ``RpcTimeout`` after the request was sent is a strike for the attempt's
instance (``call.peer``); any reply is success and clears the strikes. A ``WrongTarget``
(the address serves another service or instance now) ejects at once. The first strike ejects
the instance when every other instance in rotation is healthy (has no strike): one silent
instance among answering ones is the outlier, and a stopped process would otherwise hold calls
for ``eject_after`` full timeouts. When others are failing too (the network, or the caller's own
deadline, may be to blame) it takes ``eject_after`` strikes in a row. An ejected instance is out
(``Discovery.eject``; never the last usable one) for
``base * 2**(n-1)`` seconds (n = ejections in a row, capped at ``cap``); then a probe greenlet
asks ``prober(instance)`` (soa.clients.probe: a real Thrift round trip, which a stopped process
cannot answer): an answer readmits it, silence ejects it again for twice as long. The streak of
ejections ends at the first successful call after a readmission. All of it runs in the calling
greenlets and the probe greenlets; nothing raises.
"""

import logging

import gevent

from soa.errors import RpcTimeout, WrongTarget

from .connection import ConnectError

log = logging.getLogger("soa.client")


class Ejector:
    def __init__(self, discovery, prober, eject_after=3, base=0.5, cap=30.0):
        self.discovery = discovery
        self.prober = prober
        self.eject_after = eject_after
        self.base = base
        self.cap = cap
        self.strikes = {}  # address -> consecutive failures
        self.streak = {}  # address -> ejections in a row
        self._greenlets = set()

    def middleware(self, next_handler):
        strikes, streak = self.strikes, self.streak

        def eject_outliers(call):
            try:
                result = next_handler(call)
            except WrongTarget:
                self._eject(call.peer, "it serves another service or instance now")
                raise
            except ConnectError:
                self.failed(call.peer)
                raise
            except RpcTimeout as e:
                if e.sent:
                    self.failed(call.peer)
                raise
            except Exception:
                if strikes:
                    strikes.pop(call.peer, None)  # a reply (an error one) or a caller error
                raise
            if strikes:
                strikes.pop(call.peer, None)
                if streak:
                    streak.pop(call.peer, None)
            return result

        return eject_outliers

    def failed(self, address):
        if address is None:
            return
        count = self.strikes.get(address, 0) + 1
        self.strikes[address] = count
        if count >= self.eject_after or self._others_healthy(address):
            self._eject(address, f"after {count} failure(s) in a row")

    def _others_healthy(self, address):
        """True when other instances are in rotation and none of them has a strike."""
        strikes = self.strikes
        others = False
        for instance in self.discovery.instances:
            other = instance.address
            if other != address:
                if strikes.get(other):
                    return False
                others = True
        return others

    def _eject(self, address, why):
        if address is None or not self.discovery.eject(address):
            return
        self.strikes.pop(address, None)
        delay = self._schedule(address)
        log.warning("%s: ejected %s %s; probing in %.1fs", self.discovery.service, address, why,
                    delay)

    def _schedule(self, address):
        n = self.streak.get(address, 0) + 1
        self.streak[address] = n
        delay = min(self.cap, self.base * 2 ** (n - 1))
        greenlet = gevent.spawn_later(delay, self._probe, address)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return delay

    def _probe(self, address):
        instance = self.discovery.known.get(address)
        if instance is None or address not in self.discovery.ejected:
            self.streak.pop(address, None)
            return  # it left the registry meanwhile
        if self.prober(instance):
            log.info("%s: %s answered a probe; readmitting it", self.discovery.service, address)
            self.discovery.readmit(address)
            self.strikes[address] = 0  # so the next success ends the streak
            return
        self._schedule(address)  # still ejected; the next probe waits twice as long

    def close(self):
        gevent.killall(list(self._greenlets), block=False)
