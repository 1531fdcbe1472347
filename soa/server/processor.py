"""Dispatching Thrift calls to a handler: a precomputed table per method and one tight loop.

At start-up each IDL method gets a ``Method`` entry: its args and result classes, a getter for
the positional arguments in IDL order, the declared exceptions with their result fields, and the
middleware chain wrapped around the handler's bound method (built once, here). Per call the loop
reads the message, decodes the args, calls the chain with a ``Call``, and writes the reply with
the request's sequence id.

On a THeader connection (``soa.theader``) the frame's info says whom the call is for and how long
the caller will wait: a call meant for another service or instance, or already late, is answered
with ``soa-error`` and never executed. An unexpected exception is logged with an error id, and
the caller gets only that id.
"""

import logging
import operator
import secrets
import time

from gevent import Timeout
from thriftpy2.thrift import TApplicationException, TMessageType, TType

from soa import theader
from soa.deadline import reset, set_current
from soa.errors import ConfigError
from soa.middleware import Call, chain
from soa.observe.histogram import FOLD_AT

from .metrics import outcome_of

log = logging.getLogger("soa.server")

# A soa-deadline-ms of at most this means "already passed" (clients send at least 1).
LATE_MS = 1
_DEADLINE = theader.DEADLINE
_SERVICE = theader.SERVICE
_INSTANCE = theader.INSTANCE
_CALL = TMessageType.CALL
_ONEWAY = TMessageType.ONEWAY
_REPLY = TMessageType.REPLY
_EXCEPTION = TMessageType.EXCEPTION


class Method:
    """One IDL method, ready to serve."""

    __slots__ = (
        "args_cls",
        "arguments",
        "declared",
        "declared_fields",
        "handle",
        "name",
        "oneway",
        "result_cls",
        "stats",
    )

    def __init__(self, name, args_cls, result_cls, bound, middleware):
        self.name = name
        self.args_cls = args_cls
        self.result_cls = result_cls
        self.oneway = result_cls is None or bool(getattr(result_cls, "oneway", False))
        self.arguments = _argument_getter([spec[1] for spec in args_cls.thrift_spec.values()])
        fields = []
        if result_cls is not None:
            for spec in result_cls.thrift_spec.values():
                if spec[1] != "success" and spec[0] == TType.STRUCT:
                    fields.append((spec[2], spec[1]))
        self.declared_fields = tuple(fields)
        self.declared = tuple(cls for cls, _ in fields)
        self.stats = None  # the method's MethodStats when the server keeps metrics

        def invoke(call, f=bound):
            return f(*call.args)

        self.handle = middleware(invoke)

    def exception_result(self, error):
        result = self.result_cls()
        for cls, field in self.declared_fields:
            if isinstance(error, cls):
                setattr(result, field, error)
                return result
        raise error  # not reached: callers only pass declared types


def _argument_getter(names):
    if not names:
        return lambda args: ()
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda args: (get(args),)
    return operator.attrgetter(*names)


class Processor:
    """Serves one thriftpy2 service class with one handler object.

    ``middlewares`` are applied outermost first. ``metrics`` (a ``Metrics``) counts every call
    with its latency and error kind, timed around the chain and recorded in this loop (as a
    middleware of its own it cost a server process several microseconds more per call), and
    the calls that never reach the chain (unknown method, late). ``run`` is called by each
    connection's greenlet and returns when the connection should close, or raises on a broken
    stream.
    """

    def __init__(self, service_name, service_cls, handler, middlewares=(), metrics=None,
                 instance_id=""):
        self.service_name = service_name
        self.instance_id = instance_id
        self.metrics = metrics
        compose = chain(*middlewares)
        missing = [m for m in service_cls.thrift_services
                   if not callable(getattr(handler, m, None))]
        if missing:
            raise ConfigError(
                f"handler {type(handler).__name__} of {service_name!r} lacks methods: "
                + ", ".join(missing)
            )
        self.table = {
            name: Method(
                name,
                getattr(service_cls, name + "_args"),
                getattr(service_cls, name + "_result", None),
                getattr(handler, name),
                compose,
            )
            for name in service_cls.thrift_services
        }
        if metrics is not None:
            for name, method in self.table.items():
                method.stats = metrics.stats(name)

    def run(self, conn, proto, flush, read_begin):
        """Serve calls on one connection until it should close; ``read_begin()`` reads the
        next message's header (``proto.read_message_begin``, or the THeader adapter's)."""
        table = self.table
        service = self.service_name
        instance_id = self.instance_id
        peer = conn.peer
        io = conn.io
        state = conn.state
        read_struct = proto.read_struct
        write_begin = proto.write_message_begin
        write_struct = proto.write_struct
        monotonic = time.monotonic
        perf_counter = time.perf_counter
        last_meta, wrong, budget = None, False, None
        while True:
            io.next_message()
            name, mtype, seqid = read_begin()
            meta = io.headers
            deadline = None
            if meta:
                if meta is not last_meta:  # decoded blocks repeat: so does this verdict
                    last_meta = meta
                    target = meta.get(_SERVICE)
                    wrong = (target is not None and target != service
                             or meta.get(_INSTANCE, instance_id) != instance_id)
                    budget = _budget(meta.get(_DEADLINE))
                if wrong:
                    proto.skip(TType.STRUCT)
                    self._wrong_target(io, meta, name, mtype, seqid, write_begin, write_struct,
                                       flush)
                    if state.draining:
                        return
                    continue
                if budget is not None:
                    deadline = _LATE if budget <= LATE_MS else monotonic() + budget / 1000.0
            method = table.get(name)
            if method is None or (mtype != _CALL and mtype != _ONEWAY):
                proto.skip(TType.STRUCT)
                reply = self._refuse(name, mtype, method is None)
                if mtype != _ONEWAY:  # a one-way caller reads no reply
                    write_begin(name, _EXCEPTION, seqid)
                    write_struct(reply)
                    flush()
            else:
                args = method.args_cls()
                read_struct(args)
                conn.busy = True
                if deadline is not None:
                    if deadline is _LATE:
                        self._late(io, method, seqid, write_begin, write_struct, flush)
                        conn.busy = False
                        conn.served += 1
                        if state.draining:
                            return
                        continue
                    token = set_current(deadline)
                stats = method.stats
                failure = None  # the error kind the metrics count, when the call fails
                if stats is not None:
                    started = perf_counter()
                try:
                    value = method.handle(Call(service, name, method.arguments(args),
                                               deadline, peer))
                    if method.oneway:
                        reply = None
                    else:
                        reply = method.result_cls()
                        reply.success = value
                        mtype = _REPLY
                except method.declared as e:
                    reply = method.exception_result(e)
                    mtype = _REPLY
                    failure = outcome_of(e)
                except TApplicationException as e:
                    reply = e
                    mtype = _EXCEPTION
                    failure = outcome_of(e)
                except (Exception, Timeout) as e:  # a gevent Timeout escaping is a handler bug
                    failure = outcome_of(e)
                    error_id = secrets.token_hex(6)
                    log.exception("%s.%s failed [error %s] (peer %s)", service, name, error_id,
                                  peer)
                    reply = TApplicationException(
                        TApplicationException.INTERNAL_ERROR,
                        f"{service}.{name}: internal error (error id {error_id}; see the"
                        " server's log)",
                    )
                    mtype = _EXCEPTION
                finally:
                    if deadline is not None:
                        reset(token)
                if stats is not None:  # inlined (no method call): it runs on every call
                    pending = stats.pending  # binned in batches (soa.observe.histogram)
                    pending.append(perf_counter() - started)
                    if len(pending) >= FOLD_AT:
                        stats.fold()
                    if failure is not None:
                        stats.errors[failure] = stats.errors.get(failure, 0) + 1
                if reply is not None and not method.oneway:
                    write_begin(name, mtype, seqid)
                    write_struct(reply)
                    flush()
            conn.busy = False
            conn.served += 1
            if state.draining:
                return

    def _refuse(self, name, mtype, unknown):
        """Count and log a message that cannot be served; returns the exception to answer."""
        if self.metrics is not None:
            kind = "unknown_method" if unknown else "bad_message_type"
            self.metrics.record_error("<unknown>" if unknown else name, kind)
        log.info("%s: refused %r (message type %s)", self.service_name, name, mtype)
        if unknown:
            return TApplicationException(TApplicationException.UNKNOWN_METHOD,
                                         f"{self.service_name}: unknown method {name!r}")
        return TApplicationException(TApplicationException.INVALID_MESSAGE_TYPE,
                                     f"{self.service_name}.{name}: unexpected message type {mtype}")

    def _late(self, io, method, seqid, write_begin, write_struct, flush):
        if self.metrics is not None:
            self.metrics.record_error(method.name, "late")
        if method.oneway:
            return
        io.reply_headers = {theader.ERROR: theader.LATE}
        write_begin(method.name, _EXCEPTION, seqid)
        write_struct(TApplicationException(
            TApplicationException.INTERNAL_ERROR,
            f"{self.service_name}.{method.name}: deadline exceeded before the call started;"
            " not executed",
        ))
        flush()

    def _wrong_target(self, io, meta, name, mtype, seqid, write_begin, write_struct, flush):
        """A call meant for another service or instance (this port was reused): refuse it."""
        if self.metrics is not None:
            self.metrics.record_error("", "wrong_target")
        wanted = f"{meta.get(_SERVICE, self.service_name)}/{meta.get(_INSTANCE, '?')}"
        log.info("%s: refused %r meant for %s", self.service_name, name, wanted)
        if mtype == _ONEWAY:
            return
        io.reply_headers = {theader.ERROR: theader.WRONG_TARGET}
        write_begin(name, _EXCEPTION, seqid)
        write_struct(TApplicationException(
            TApplicationException.INTERNAL_ERROR,
            f"this address serves {self.service_name}/{self.instance_id}, not {wanted};"
            " not executed",
        ))
        flush()


_LATE = object()


def _budget(value):
    """The milliseconds a ``soa-deadline-ms`` value gives, or None when there is none or it is
    not a number (a peer's bad header never fails the call)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
