"""etcd users and roles for a soa registry, made to match soa.yaml (``soa etcd auth-setup``).

Under ``prefix`` (``P``) the plan is:

- per service ``S`` (with ``services.S.etcd: {user, password}``): role ``soa:P:service:S``,
  which may read ``P/`` and write only ``P/services/S/``; its user gets that role. So service
  A's credentials can neither register as B nor delete B's instances.
- the client identity (``etcd.user``/``etcd.password``, unless it is ``root``): role
  ``soa:P:reader``, which may read ``P/`` and write only ``P/.history/`` (the scratch key
  ``soa registry history`` uses to know its replay has caught up).
- the admin: user ``root`` with etcd's ``root`` role (password ``etcd.root_password``).
- then authentication is enabled.

``apply`` is idempotent and convergent: it only makes what is missing or different (a role's
permissions are set to exactly the plan's; a password is changed only when it no longer
authenticates), and returns one line per change, never a password. A second run returns [].
"""

from dataclasses import dataclass

import grpc
from etcd3 import etcdrpc
from etcd3.etcdrpc import auth_pb2

from soa.errors import ConfigError, DiscoveryError

from .etcd import RETRYABLE, EtcdConnection, describe, range_end

READ = auth_pb2.Permission.READ
WRITE = auth_pb2.Permission.WRITE
READWRITE = auth_pb2.Permission.READWRITE
_KIND = {READ: "read", WRITE: "write", READWRITE: "read+write"}


@dataclass(frozen=True)
class Account:
    user: str
    password: str
    role: str
    permissions: tuple  # (kind, key prefix) pairs

    def __repr__(self):
        return f"Account(user={self.user!r}, role={self.role!r}, password=<redacted>)"


def plan(config):
    """The accounts soa.yaml asks for; ``ConfigError`` naming the key that is missing."""
    etcd = config.etcd
    prefix = etcd.prefix.rstrip("/")
    if not etcd.root_password:
        raise ConfigError("is required by auth-setup (e.g. root_password: "
                          "${SOA_ETCD_ROOT_PASSWORD})", source=config.source,
                          path="etcd.root_password")
    accounts = []
    for name, service in sorted(config.services.items()):
        if service.etcd is None:
            raise ConfigError("is required by auth-setup: {user: ..., password: ${...}}",
                              source=config.source, path=f"services.{name}.etcd")
        accounts.append(Account(service.etcd.user, service.etcd.password,
                                f"soa:{prefix}:service:{name}",
                                ((READ, f"{prefix}/"),
                                 (READWRITE, f"{prefix}/services/{name}/"))))
    if etcd.user and etcd.user != "root":
        accounts.append(Account(etcd.user, etcd.password, f"soa:{prefix}:reader",
                                ((READ, f"{prefix}/"), (READWRITE, f"{prefix}/.history/"))))
    users = [a.user for a in accounts]
    for user in users:
        if users.count(user) > 1 or user == "root":
            raise ConfigError(f"etcd user {user!r} is named for more than one role (each service"
                              " and the client identity need their own)", source=config.source)
    return accounts


def apply(config):
    """Create or fix every user and role of ``plan(config)`` and enable auth, as root.
    Returns the changes made, one line each. ``DiscoveryError`` when etcd fails or refuses."""
    accounts = plan(config)
    root = EtcdConnection(_as(config.etcd, "root", config.etcd.root_password))
    try:
        client = root.client()
        try:
            return _Setup(client, config.etcd).run(accounts)
        except RETRYABLE as e:
            raise DiscoveryError(f"etcd {root.endpoint}: auth-setup: {describe(e)}") from e
    finally:
        root.close()


def _as(etcd, user, password):
    from dataclasses import replace

    return replace(etcd, user=user, password=password)


class _Setup:
    def __init__(self, client, etcd):
        self.client = client
        self.stub = client.auth_stub
        self.timeout = client.timeout
        self.etcd = etcd
        self.changes = []
        self.enabled = self._authenticates("root", etcd.root_password)

    def run(self, accounts):
        roles = set(self.stub.RoleList(etcdrpc.AuthRoleListRequest(), self.timeout).roles)
        users = set(self.stub.UserList(etcdrpc.AuthUserListRequest(), self.timeout).users)
        if "root" not in roles:
            self._call("RoleAdd", etcdrpc.AuthRoleAddRequest(name="root"), "created role root")
        self._user("root", self.etcd.root_password, "root", users)
        for account in accounts:
            self._role(account, roles)
            self._user(account.user, account.password, account.role, users)
        if not self.enabled:
            self._call("AuthEnable", etcdrpc.AuthEnableRequest(), "enabled authentication")
        return self.changes

    def _call(self, method, request, change):
        response = getattr(self.stub, method)(request, self.timeout)
        self.changes.append(change)
        return response

    def _role(self, account, roles):
        if account.role not in roles:
            self._call("RoleAdd", etcdrpc.AuthRoleAddRequest(name=account.role),
                       f"created role {account.role}")
            have = set()
        else:
            response = self.stub.RoleGet(etcdrpc.AuthRoleGetRequest(role=account.role),
                                         self.timeout)
            have = {(p.permType, p.key.decode(), p.range_end.decode()) for p in response.perm}
        want = {(kind, key, range_end(key).decode()) for kind, key in account.permissions}
        for kind, key, end in sorted(have - want):
            self._call("RoleRevokePermission", etcdrpc.AuthRoleRevokePermissionRequest(
                role=account.role, key=key, range_end=end),
                f"revoked {_KIND.get(kind, kind)} on {key} from role {account.role}")
        for kind, key, end in sorted(want - have):
            permission = auth_pb2.Permission(permType=kind, key=key.encode(),
                                             range_end=end.encode())
            self._call("RoleGrantPermission", etcdrpc.AuthRoleGrantPermissionRequest(
                name=account.role, perm=permission),
                f"granted role {account.role} {_KIND[kind]} on {key}*")

    def _user(self, user, password, role, users):
        if user not in users:
            self._call("UserAdd", etcdrpc.AuthUserAddRequest(name=user, password=password),
                       f"created user {user}")
            users.add(user)
        elif not self.enabled or not self._authenticates(user, password):
            # Before auth is enabled a password cannot be checked: set it (first run only).
            self._call("UserChangePassword", etcdrpc.AuthUserChangePasswordRequest(
                name=user, password=password),
                f"set the password of user {user}" if not self.enabled else
                f"changed the password of user {user}")
        roles = self.stub.UserGet(etcdrpc.AuthUserGetRequest(name=user), self.timeout).roles
        if role not in roles:
            self._call("UserGrantRole", etcdrpc.AuthUserGrantRoleRequest(user=user, role=role),
                       f"granted role {role} to user {user}")

    def _authenticates(self, user, password):
        """Whether etcd accepts the password; False when auth is not enabled."""
        raw = etcdrpc.AuthStub(self.client.auth.raw_channel)
        try:
            raw.Authenticate(etcdrpc.AuthenticateRequest(name=user, password=password),
                             self.timeout)
            return True
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                return False
            raise
