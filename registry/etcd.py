"""A connection to an etcd cluster: protobuf set-up, gevent-friendly grpc, endpoint failover,
authentication (``registry.etcd_auth``) and TLS.

python-etcd3 0.12 (the PyPI release) ships protobuf stubs that only load under the pure-Python
protobuf backend when protobuf >= 4 is installed. The backend is chosen once per process, when
protobuf is first imported, so this module selects it before importing etcd3. Only registry
traffic uses protobuf; Thrift calls never touch it, so the slower backend stays off the hot path.
"""

import os
import threading

from soa import entry
from soa.errors import DiscoveryError, EtcdAuthError

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
# grpc's C core logs to the process's stderr (GOAWAY, reconnects, absl's start-up notice). What
# a user sees comes from soa's own logging; GRPC_VERBOSITY=ERROR in the environment brings the
# core's lines back for debugging.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# soa never uses grpc across a fork, and grpc's fork handlers can abort forked children while a
# watch is live (set here too for programs that patch gevent themselves, without soa.entry.init).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

try:
    import etcd3
    import grpc
    from etcd3 import etcdrpc
except TypeError as e:  # protobuf was imported earlier with its C/upb backend
    raise ImportError(
        "soa: etcd3's protobuf stubs need the pure-Python protobuf backend. Set "
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python in the environment, or import soa's "
        "registry before anything that imports protobuf."
    ) from e

from .etcd_auth import TokenAuth  # noqa: E402  (after the protobuf backend is chosen)

# etcd's server enforces grpc keepalive (--grpc-keepalive-min-time, default 5 s, and no pings
# while no call is open): a client that pings more often, or pings an idle connection, collects
# strikes and is sent GOAWAY "too_many_pings" (ENHANCE_YOUR_CALM). So ping only while a call
# (a watch) is open, at twice etcd's minimum interval; unary calls carry their own deadline.
ETCD_KEEPALIVE_MIN_TIME = 5.0


def grpc_options(keepalive_time=2 * ETCD_KEEPALIVE_MIN_TIME):
    """Channel options: keepalive every ``keepalive_time`` seconds while a call is open."""
    return [
        ("grpc.keepalive_time_ms", int(keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", 3000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),  # a quiet watch is still pinged
        ("grpc.enable_retries", 0),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


GRPC_OPTIONS = grpc_options()

# ValueError: grpc raises it for a call on a channel another greenlet closed after a failure.
RETRYABLE = (grpc.RpcError, etcd3.exceptions.Etcd3Exception, OSError, ValueError)
# Refused credentials or permissions: retrying with the same config cannot help.
PERMANENT = (EtcdAuthError,)


class EtcdConnection:
    """A client for one of the configured endpoints, moving to the next one when told it failed.

    ``client()`` never does I/O beyond creating a channel. Callers report failures with
    ``failed(client)``; the next ``client()`` then dials the next endpoint. Safe to share between
    greenlets.
    """

    def __init__(self, config):
        self.config = config
        self._lock = threading.Lock()
        self._index = 0
        self._client = None

    @property
    def endpoint(self):
        return self.config.endpoints[self._index % len(self.config.endpoints)]

    def client(self):
        with self._lock:
            if self._client is None:
                entry.cooperative_grpc()  # gevent without soa.entry.init() (issue 10 section 4)
                self._client = self._dial(self.endpoint)
            return self._client

    def failed(self, client):
        """The given client failed: drop it and move to the next endpoint (once per failure)."""
        with self._lock:
            if client is self._client:
                self._client = None
                self._index += 1
                try:
                    client.close()
                except Exception:  # closing a broken channel can fail; nothing to do about it
                    pass

    def close(self):
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _dial(self, endpoint):
        """A client whose calls carry the auth token as metadata (see ``registry.etcd_auth``);
        etcd3 is given no user/password, so it attaches no call credentials. No I/O."""
        host, _, port = endpoint.rpartition(":")
        tls = self.config.tls
        try:
            client = etcd3.client(
                host=host.strip("[]"),
                port=int(port),
                timeout=self.config.dial_timeout,
                ca_cert=tls.ca if tls else None,
                cert_cert=tls.cert if tls else None,
                cert_key=tls.key if tls else None,
                grpc_options=GRPC_OPTIONS,
            )
        except (OSError, ValueError) as e:  # unreadable TLS files
            raise DiscoveryError(f"etcd {endpoint}: etcd.tls: {describe(e)}") from e
        auth = TokenAuth(client.channel, endpoint, self.config.user, self.config.password,
                         self.config.dial_timeout)
        _intercept(client, grpc.intercept_channel(client.channel, auth))
        client.auth = auth
        return client

    @staticmethod
    def range_prefix(client, prefix):
        """List every key under ``prefix``; the response is decoded by ``registry.wire``."""
        from . import wire

        request = etcdrpc.RangeRequest(key=prefix.encode(), range_end=range_end(prefix))
        call = client.channel.unary_unary(
            "/etcdserverpb.KV/Range",
            request_serializer=etcdrpc.RangeRequest.SerializeToString,
            response_deserializer=wire.decode_range_response,
        )
        return call(request, client.timeout, credentials=client.call_credentials,
                    metadata=client.metadata)

    @staticmethod
    def watch(client, requests, timeout=None):
        """Open a watch stream (ended after ``timeout`` seconds, if given); responses are
        decoded by ``registry.wire``."""
        from . import wire

        call = client.channel.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=etcdrpc.WatchRequest.SerializeToString,
            response_deserializer=wire.decode_watch_response,
        )
        return call(requests, timeout, credentials=client.call_credentials,
                    metadata=client.metadata)


def _intercept(client, channel):
    """Point every stub of an etcd3 0.12 client at ``channel``."""
    client.channel = channel
    client.kvstub = etcdrpc.KVStub(channel)
    client.watcher = etcd3.watch.Watcher(etcdrpc.WatchStub(channel), timeout=client.timeout)
    client.clusterstub = etcdrpc.ClusterStub(channel)
    client.leasestub = etcdrpc.LeaseStub(channel)
    client.maintenancestub = etcdrpc.MaintenanceStub(channel)
    client.auth_stub = etcdrpc.AuthStub(channel)


def range_end(prefix):
    """The end of the key range holding every key that starts with ``prefix``."""
    raw = prefix.encode()
    return raw[:-1] + bytes([raw[-1] + 1])


def describe(error):
    """One line for an etcd/grpc error."""
    if isinstance(error, EtcdAuthError):
        return str(error)
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        try:
            return f"{error.code().name}: {error.details()}"
        except Exception:
            pass
    return str(error).splitlines()[0] if str(error) else type(error).__name__
