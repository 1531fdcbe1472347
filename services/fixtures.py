"""pytest fixtures for the shop's storage backends; test modules import the ones they use.

- ``postgres_server``: one real PostgreSQL server per test session (soa.testing.postgres).
- ``shop_backend``: parametrized over ``sqlite`` and ``postgresql``; ``shop_backend(name)`` is
  the extra ``settings`` of service ``name`` (for PostgreSQL a fresh database per test and
  service, for SQLite nothing: the default file under the data dir).
"""

import uuid

import pytest


@pytest.fixture(scope="session")
def postgres_server():
    from soa.testing.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


class Backend:
    def __init__(self, name, server=None):
        self.name = name
        self.server = server
        self.urls = {}

    def url(self, service):
        """A database URL for ``service`` (the same one for the whole test)."""
        if service not in self.urls:
            if self.server is None:
                self.urls[service] = "sqlite:"
            else:
                self.urls[service] = self.server.create_database(
                    f"t_{service}_{uuid.uuid4().hex[:10]}")
        return self.urls[service]

    def __call__(self, service):
        return {"database": self.url(service)}


@pytest.fixture(params=["sqlite", "postgresql"])
def shop_backend(request):
    if request.param == "sqlite":
        return Backend("sqlite")
    return Backend("postgresql", request.getfixturevalue("postgres_server"))
