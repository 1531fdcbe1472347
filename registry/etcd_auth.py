"""etcd authentication as per-call grpc metadata, and etcd's refusals as one clear error.

python-etcd3 0.12 attaches its auth token as grpc *call credentials*, which grpc refuses to send
on a plaintext channel ("Established channel does not have a sufficient security level to
transfer call credential"), so user/password auth never worked against a plaintext etcd. etcd
itself only reads the ``token`` metadata key, so ``TokenAuth`` is a grpc client interceptor that
adds that key to every call, on plaintext and TLS channels alike:

- it authenticates lazily, on the first call (so building a client never does I/O), and again
  when etcd says the token is no longer valid (``UNAUTHENTICATED``: a simple token idle past
  ``--auth-token-ttl``, an expired JWT, a restarted etcd); a unary call is then retried once with
  the new token, a stream fails as usual and the next call carries a new token;
- a wrong user name or password, and ``PERMISSION_DENIED``, become ``EtcdAuthError``: a
  permanent failure that names the endpoint, the user and the key, never the password.

Every greenlet of the process may call through one interceptor; the token is behind a lock.
"""

import collections
import threading

import grpc
from etcd3 import etcdrpc

from soa.errors import EtcdAuthError

_VERBS = {
    "/etcdserverpb.KV/Put": "write",
    "/etcdserverpb.KV/DeleteRange": "delete",
    "/etcdserverpb.KV/Range": "read",
    "/etcdserverpb.KV/Txn": "change",
    "/etcdserverpb.Watch/Watch": "watch",
    "/etcdserverpb.Lease/LeaseRevoke": "revoke a lease on",
}


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression")),
    grpc.ClientCallDetails,
):
    pass


class TokenAuth(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds etcd's ``token`` metadata to every call made through ``grpc.intercept_channel``.

    ``channel`` is the raw (not intercepted) channel, used for ``Authenticate`` only. With no
    ``user`` no token is sent (a plain or certificate-authenticated etcd) and only the error
    translation applies. Raises ``EtcdAuthError`` for refused credentials or permissions; any
    other grpc error passes through unchanged.
    """

    def __init__(self, channel, endpoint, user=None, password=None, timeout=None):
        self.endpoint = endpoint
        self.user = user
        self._password = password
        self._timeout = timeout
        self.raw_channel = channel
        self._authenticate = etcdrpc.AuthStub(channel).Authenticate
        self._token = None  # None: not asked yet; "": etcd has auth disabled
        self._lock = threading.Lock()
        self.logins = 0

    def __repr__(self):
        return f"TokenAuth(endpoint={self.endpoint!r}, user={self.user!r}, password=<redacted>)"

    # -- the token ---------------------------------------------------------------------------

    def token(self, stale=False):
        """The current token ("" when none is needed), authenticating first when there is
        none yet or ``stale`` is the token etcd just refused."""
        if not self.user:
            return ""
        with self._lock:
            if self._token is None or (stale is not False and self._token == stale):
                self._token = self._login()
            return self._token

    def refused(self, token):
        """etcd refused ``token``: the next call authenticates again."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _login(self):
        request = etcdrpc.AuthenticateRequest(name=self.user, password=self._password)
        try:
            response = self._authenticate(request, self._timeout)
        except grpc.RpcError as e:
            code = _code(e)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise EtcdAuthError(
                    f"etcd {self.endpoint}: authentication failed for etcd user {self.user!r}:"
                    " wrong user name or password"
                ) from e
            if code == grpc.StatusCode.FAILED_PRECONDITION:  # auth is not enabled on this etcd
                return ""
            raise
        self.logins += 1
        return response.token

    def _retry_with_new_token(self, code, token):
        if not self.user:
            return False
        return code == grpc.StatusCode.UNAUTHENTICATED or (
            code == grpc.StatusCode.INVALID_ARGUMENT and not token  # auth enabled since
        )

    # -- the interceptor ---------------------------------------------------------------------

    def _details(self, details, token):
        metadata = list(details.metadata or ())
        if token:
            metadata.append(("token", token))
        return _Details(details.method, details.timeout, metadata or None, details.credentials,
                        getattr(details, "wait_for_ready", None),
                        getattr(details, "compression", None))

    def _unary(self, continuation, details, request):
        token = self.token()
        outcome = continuation(self._details(details, token), request)
        code = _code(outcome)
        if self._retry_with_new_token(code, token):
            token = self.token(stale=token)
            outcome = continuation(self._details(details, token), request)
            code = _code(outcome)
        self._check(code, details.method, request, outcome)
        return outcome

    def intercept_stream_unary(self, continuation, details, request_iterator):
        # not retried: the request stream may have been consumed (etcd3 makes no such call)
        outcome = continuation(self._details(details, self.token()), request_iterator)
        self._check(_code(outcome), details.method, None, outcome)
        return outcome

    def _stream(self, continuation, details, request):
        token = self.token()
        return _Stream(continuation(self._details(details, token), request), self, token,
                       details.method)

    intercept_unary_unary = _unary
    intercept_unary_stream = _stream
    intercept_stream_stream = _stream

    def _check(self, code, method, request, error):
        """Raise ``EtcdAuthError`` for a refusal that no retry can fix."""
        cause = error if isinstance(error, BaseException) else None
        what = _VERBS.get(method, f"call {method} on")
        key = getattr(request, "key", b"") if request is not None else b""
        target = f" {key.decode('utf-8', 'replace')}" if key else ""
        who = f"etcd user {self.user!r}" if self.user else "this client (no etcd.user)"
        if code == grpc.StatusCode.PERMISSION_DENIED:
            raise EtcdAuthError(
                f"etcd {self.endpoint}: permission denied: {who} may not {what}{target}"
            ) from cause
        if code == grpc.StatusCode.INVALID_ARGUMENT and not self.user:
            raise EtcdAuthError(
                f"etcd {self.endpoint} refused to {what}{target}: {_details(error)} (set"
                " etcd.user and etcd.password if etcd has authentication enabled)"
            ) from cause


class _Stream:
    """A streaming call, unchanged, except that a refused token or permission is noted."""

    def __init__(self, call, auth, token, method):
        self._call = call
        self._auth = auth
        self._token = token
        self._method = method

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._call)
        except grpc.RpcError as e:
            code = _code(e)
            if self._auth._retry_with_new_token(code, self._token):
                self._auth.refused(self._token)
            self._auth._check(code, self._method, None, e)
            raise

    def __getattr__(self, name):
        return getattr(self._call, name)


def _code(outcome):
    try:
        return outcome.code()
    except Exception:  # not a grpc call or error: nothing to classify
        return None


def _details(error):
    try:
        return error.details()
    except Exception:
        return type(error).__name__
