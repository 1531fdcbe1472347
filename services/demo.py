"""The shop's purchase flow, end to end, through soa clients (discovery and balancing).

``run_demo(config, echo, fleet=None)`` browses the catalog, places regular orders, runs a flash
sale with a burst of buyers, cancels an order, and counts the notifications Notify delivered for
it. Every step says which instance served it (a client middleware records ``call.peer``). It
returns the summary dict whose JSON is the demo's last line.

Given the ``Fleet`` that runs the shop (``soa demo --up``), it also does what BigTap did: it
scales the flash sale out before the sale opens and back in after it closes, and in the middle
of the buyers' burst it kills one flash-sale instance with SIGKILL and drains another with
SIGTERM. The summary says whom it killed and how many calls failed (none should).
"""

import json
import signal
import time
import uuid

import gevent
import gevent.pool

from soa import idl as idl_loader
from soa.clients import Clients
from soa.clients.served import ServedBy
from soa.errors import SoaError

BUYERS = 10_000
CONCURRENCY = 100
SALE_INSTANCES = 5  # flash-sale instances while the sale is open (2 otherwise)
FLASH_UNITS = 40
FLASH_SKU = "PHONE14-256-WHITE"
TOPICS = ("order.created", "order.cancelled")


class Demo:
    def __init__(self, config, echo, run_id=None, fleet=None):
        self.config = config
        self.echo = echo
        self.fleet = fleet
        self.killed = []
        self.instances = {}
        self.rps = 0  # the flash sale's buyers per second
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.served = ServedBy()
        self.clients = Clients(config)
        self.failed = []
        names = ("catalog", "inventory", "order", "flashsale", "notify")
        self.c = {}  # clients, built on first use
        self.m = {name: idl_loader.load(config.service(name).idl) for name in names}

    def close(self):
        self.clients.close()

    def step(self, service, text):
        self.echo(f"  [{service} @ {self.served.last.get(service, '?')}] {text}")

    def call(self, service, method, *args, expected=()):
        """One call; an unexpected failure is counted (and reported) instead of raised."""
        client = self.c.get(service)
        if client is None:
            client = self.c[service] = self.clients.client(service, middleware=[self.served])
        try:
            return getattr(client, method)(*args)
        except expected:
            raise
        except Exception as e:  # noqa: BLE001 - a demo reports failures, it does not crash
            self.failed.append(f"{service}.{method}: {type(e).__name__}: {e}")
            self.echo(f"  ! {service}.{method} failed: {type(e).__name__}: {e}")
            return None

    def key(self, what):
        return f"demo-{self.run_id}-{what}"

    # -- the flow

    def browse(self):
        self.echo("1. Browse the catalog")
        products = self.call("catalog", "list_products", 0, 20) or []
        self.step("catalog", f"{len(products)} products: "
                  + ", ".join(p.title for p in products))
        sku = self.call("catalog", "get_sku", "PHONE14-128-BLACK")
        if sku is not None:
            self.step("catalog", f"{sku.sku}: {sku.price.cents / 100:.2f} {sku.price.currency}")

    def order(self, user, lines, channel):
        om = self.m["order"]
        req = om.CreateOrderRequest(
            user_id=user, lines=[om.LineItem(sku=s, quantity=q) for s, q in lines],
            channel=getattr(om.inventory.Channel, channel),
            address=om.shared.Address(recipient=user, city="Beijing", country="CN"))
        placed = self.call("order", "create_order", self.key(f"order-{user}"), req)
        if placed is not None:
            self.step("order", f"{user}: order {placed.order_id} "
                      f"{om.OrderStatus._VALUES_TO_NAMES[placed.status]}, "
                      f"{placed.total.cents / 100:.2f} {placed.total.currency} via {channel}")
        return placed

    def flash_sale(self):
        self.echo(f"3. Flash sale: {FLASH_UNITS} x {FLASH_SKU}, {BUYERS} buyers")
        fm = self.m["flashsale"]
        price = fm.shared.Money(cents=299900, currency="CNY")
        self._restock()
        sale = self.call("flashsale", "register_sale", self.key("sale"), FLASH_SKU, FLASH_UNITS,
                         price, 0, 0)
        if sale is None:
            return {"tokens": 0, "sold": 0, "oversold": 0, "quantity": 0}
        self.step("flashsale", f"sale {sale.sale_id} registered, {sale.quantity} units moved "
                  "to the FLASH_SALE channel")
        tokens, sold_out = [], 0
        self._scale("flashsale", SALE_INSTANCES, "before the sale opens")
        pool = gevent.pool.Pool(CONCURRENCY)
        started = time.monotonic()
        applied = [0]

        def apply(i):
            nonlocal sold_out
            applied[0] += 1
            if applied[0] == BUYERS // 3:
                gevent.spawn(self._kill, "flashsale", signal.SIGKILL)
            elif applied[0] == 2 * BUYERS // 3:
                gevent.spawn(self._kill, "flashsale", signal.SIGTERM)
            try:
                ticket = self.call("flashsale", "apply", sale.sale_id, f"buyer-{self.run_id}-{i}",
                                   expected=(fm.shared.ShopError,))
            except fm.shared.ShopError as e:
                if e.code == fm.shared.ErrorCode.SOLD_OUT:
                    sold_out += 1
                    return
                self.failed.append(f"flashsale.apply: {e}")
                return
            if ticket is not None:
                tokens.append(ticket.token)

        pool.map(apply, range(BUYERS))
        elapsed = time.monotonic() - started
        self.rps = round(BUYERS / elapsed) if elapsed > 0 else 0
        spread = dict(self.served.by_service["flashsale"])
        self.echo(f"  [flashsale @ {len(spread)} instances] {len(tokens)} tickets, {sold_out} "
                  f"SOLD_OUT, {BUYERS} buyers in {elapsed:.1f}s ({self.rps} requests/s)")
        for address, calls in sorted(spread.items()):
            self.echo(f"      {address}: {calls} calls")
        address = fm.shared.Address(recipient="buyer", city="Shanghai", country="CN")
        pool.map(lambda t: self.call("flashsale", "purchase", t, address), tokens)
        results = self._settle(tokens)
        succeeded = sum(1 for r in results if r.status == fm.PurchaseStatus.SUCCEEDED)
        final = self.call("flashsale", "get_sale", sale.sale_id)
        level = self.call("inventory", "get_stock", FLASH_SKU)
        oversold = self._oversold(final, level, len(tokens), succeeded)
        self.step("flashsale", f"{succeeded} purchases became orders; sale counters: "
                  f"tickets {final.tickets_issued if final else '?'}, sold "
                  f"{final.sold if final else '?'} of {FLASH_UNITS}")
        self._scale("flashsale", 2, "after the sale closed")
        return {"tokens": len(tokens), "sold": succeeded, "oversold": oversold}

    def _scale(self, service, count, when):
        """Scale through the fleet that runs the shop (only with ``soa demo --up``)."""
        if self.fleet is None:
            return
        before = len(self.fleet.running(service))
        self.fleet.scale(service, count)
        self.instances.setdefault(service, [before])
        self.instances[service].append(count)
        self.echo(f"  [{service}] scaled {before} -> {count} instances {when}")

    def _kill(self, service, sig):
        """Kill the newest live instance of ``service`` while calls are in flight."""
        if self.fleet is None:
            return
        live = self.fleet.running(service)
        if len(live) < 2:
            return
        victim = max(live, key=lambda c: c.index)
        victim.retired = True  # gone on purpose: the fleet does not report it as a failure
        victim.proc.send_signal(sig)
        name = signal.Signals(sig).name
        self.killed.append({"service": service, "address": victim.address, "signal": name})
        self.echo(f"  ! {name} to {service} at {victim.address} (pid {victim.pid}) "
                  "with calls in flight")

    def _restock(self):
        """Top the SKU's unallocated pool up to FLASH_UNITS (a demo run draws that many)."""
        level = self.call("inventory", "get_stock", FLASH_SKU)
        if level is None or level.unallocated >= FLASH_UNITS:
            return
        warehouse, quantity = sorted(level.warehouses.items())[0]
        more = FLASH_UNITS - level.unallocated
        self.call("inventory", "set_stock", self.key("restock"), warehouse, FLASH_SKU,
                  quantity + more)
        self.step("inventory", f"restocked {more} x {FLASH_SKU} in {warehouse}")

    def _settle(self, tokens, timeout=30.0):
        fm = self.m["flashsale"]
        deadline = time.monotonic() + timeout
        done = {}
        while len(done) < len(tokens) and time.monotonic() < deadline:
            for token in tokens:
                if token not in done:
                    r = self.call("flashsale", "get_result", token)
                    if r is not None and r.status != fm.PurchaseStatus.PENDING:
                        done[token] = r
            if len(done) < len(tokens):
                gevent.sleep(0.2)
        if len(done) < len(tokens):
            self.failed.append(f"{len(tokens) - len(done)} purchases still PENDING")
        return list(done.values())

    def _oversold(self, sale, level, tokens, succeeded):
        """Units sold beyond what there was, by every count we can make."""
        over = max(0, tokens - FLASH_UNITS) + max(0, succeeded - FLASH_UNITS)
        if sale is not None:
            over += max(0, sale.sold - sale.quantity) + max(0, sale.tickets_issued - sale.quantity)
        if level is not None:
            for ch in level.channels:
                over += max(0, -ch.available) + max(0, ch.reserved + ch.confirmed - ch.allocated)
            over += max(0, sum(ch.allocated for ch in level.channels) - level.total)
        return over

    def cancel(self, placed):
        self.echo("4. Cancel an order")
        if placed is None:
            return False
        cancelled = self.call("order", "cancel_order", self.key("cancel"), placed.order_id)
        if cancelled is not None:
            om = self.m["order"]
            self.step("order", f"order {cancelled.order_id} is "
                      f"{om.OrderStatus._VALUES_TO_NAMES[cancelled.status]}; its stock is back")
        return cancelled is not None

    def delivered(self):
        """Deliveries marked DELIVERED, per subscription of the order topics."""
        nm = self.m["notify"]
        counts = {}
        for topic in TOPICS:
            for sub in self.call("notify", "subscriptions", topic) or []:
                n, offset = 0, 0
                while True:
                    page = self.call("notify", "deliveries", sub.subscription_id, offset, 1000)
                    if not page:
                        break
                    n += sum(1 for d in page if d.status == nm.DeliveryStatus.DELIVERED)
                    offset += len(page)
                counts[sub.subscription_id] = n
        return counts

    def subscribers(self, timeout=15.0):
        subs = _poll(lambda: {t: self.call("notify", "subscriptions", t) or [] for t in TOPICS},
                     lambda subs: all(subs.values()), timeout)
        return subs if all(subs.values()) else {t: [] for t in TOPICS}

    def run(self):
        started = time.monotonic()
        self.browse()
        subs = self.subscribers()
        groups = {t: len({(s.service_name, s.group) for s in subs[t]}) for t in TOPICS}
        self.echo("   subscribers: " + ", ".join(
            f"{t} -> {', '.join(f'{s.service_name}.{s.method}' for s in subs[t]) or 'nobody'}"
            for t in TOPICS))
        before = sum(self.delivered().values())
        self.echo("2. Regular orders")
        alice = self.order(f"alice-{self.run_id}", [("PHONE14-128-BLACK", 1), ("BAND8-BLACK", 2)],
                           "WEB")
        bob = self.order(f"bob-{self.run_id}", [("BUDS5-WHITE", 1)], "APP")
        sale = self.flash_sale()
        cancelled = self.cancel(alice)
        orders = sum(1 for o in (alice, bob) if o is not None) + sale["sold"]
        expected = orders * groups["order.created"] + int(cancelled) * groups["order.cancelled"]
        self.echo(f"5. Notifications (expecting {expected})")
        got = _poll(lambda: sum(self.delivered().values()) - before,
                    lambda got: got >= expected, timeout=20)
        if got < expected:
            self.failed.append(f"only {got} of {expected} notifications delivered")
        self.step("notify", f"{got} notifications delivered to subscribers")
        return {
            "orders": orders,
            "flash_sale_tokens": sale["tokens"],
            "flash_sale_sold": sale["sold"],
            "oversold": sale["oversold"],
            "notifications_delivered": got,
            "flash_sale_buyers": BUYERS,
            "flash_sale_requests_per_second": self.rps,
            "instances": self.instances,
            "killed": self.killed,
            "failed_calls": len(self.failed),
            "served_by": {s: dict(c) for s, c in sorted(self.served.by_service.items())},
            "seconds": round(time.monotonic() - started, 1),
        }


def run_demo(config, echo=print, fleet=None):
    """Run the flow against whatever is registered under ``config``; returns the summary.
    With the ``fleet`` that runs the shop it also scales and kills (the module docstring)."""
    demo = Demo(config, echo, fleet=fleet)
    try:
        ping = demo.call("catalog", "ping")
        if ping is None:
            raise SoaError("the shop is not reachable (is `soa up` running?): "
                           + demo.failed[-1])
        return demo.run()
    finally:
        demo.close()


def summary_line(summary):
    return json.dumps(summary, sort_keys=False, separators=(", ", ": "))


def _poll(fetch, done, timeout, interval=0.2):
    """``fetch()`` until ``done(value)`` or ``timeout`` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        gevent.sleep(interval)
