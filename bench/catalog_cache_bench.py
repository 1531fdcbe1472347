"""Catalog reads per second with the Redis cache and without it (baseline), in the same run.

One catalog server (the shop's own handler, registration off) per case, in its own process, on
SQLite and on PostgreSQL (a real server from soa.testing.postgres; skipped with a note when it
is not installed), each without a cache and with one real redis-server. The load generator
alternates ``get_product`` of a seed product and ``get_prices`` of three seed SKUs over raw
thriftpy2 clients, 16 connections. The first calls fill the cache (the harness's warm-up).
"""

import sys
import tempfile
from pathlib import Path

import yaml

from . import harness

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 16


def catalog_server(settings):
    """A catalog server on a free port with ``services.catalog.settings`` = ``settings``."""
    from soa.config import load_config
    from soa.server import Server

    root = Path(tempfile.mkdtemp(prefix="soa-bench-catalog-"))
    (root / "soa.yaml").write_text(yaml.safe_dump({"services": {"catalog": {
        "idl": str(ROOT / "idl" / "catalog.thrift"), "service": "CatalogService",
        "handler": "services.catalog.handler:CatalogHandler", "host": "127.0.0.1", "port": 0,
        "protocol": "binary", "transport": "buffered", "settings": settings}}}))
    config = load_config(str(root / "soa.yaml"))
    server = Server(config, config.service("catalog"), register=False).start()
    return server.address[1]


def reader(module, port):
    from thriftpy2.rpc import make_client

    from services.seed import PRODUCTS

    ids = [p[0] for p in PRODUCTS]
    skus = [s[0] for p in PRODUCTS for s in p[3]][:3]

    def make():
        client = make_client(module.CatalogService, harness.HOST, port, timeout=30000)
        turn = [0]

        def call():
            turn[0] += 1
            if turn[0] % 2:
                client.get_product(ids[turn[0] % len(ids)])
            else:
                client.get_prices(skus)

        return call, client.close

    return make


def _backends(stack):
    yield "sqlite", "sqlite:"
    try:
        from soa.testing.postgres import PostgresServer

        pg = PostgresServer()
    except RuntimeError as e:
        print(f"catalog_cache: no PostgreSQL case ({e})", file=sys.stderr)
        return
    stack.append(pg)
    pg.start()
    yield "postgresql", pg.create_database("bench_catalog")


def run(args):
    from soa import idl as idl_loader
    from soa.testing.redis_server import RedisServer

    module = idl_loader.load(str(ROOT / "idl" / "catalog.thrift"))
    rows, stack = [], []
    try:
        cache = RedisServer().start()
        stack.append(cache)
        for backend, url in _backends(stack):
            data = tempfile.mkdtemp(prefix="soa-bench-catalog-db-")
            url = url if url != "sqlite:" else f"sqlite:{data}/catalog.db"
            cases = [("no cache", {"database": url}, True),
                     ("redis cache", {"database": url, "cache": cache.url}, False)]
            servers = [harness.start_server("bench.catalog_cache_bench:catalog_server", s)
                       for _, s, _ in cases]
            stack.extend(servers)
            group = f"catalog reads, {backend}, c={CONCURRENCY}"
            results = [[] for _ in cases]
            for _ in range(args.rounds):
                for i, server in enumerate(servers):
                    results[i].append(harness.measure(reader(module, server.port), CONCURRENCY,
                                                      args.seconds, server_pid=server.proc.pid))
            rows.extend(harness.Row(group, case, results[i], baseline)
                        for i, (case, _, baseline) in enumerate(cases))
    finally:
        for thing in reversed(stack):
            thing.remove() if hasattr(thing, "remove") else thing.stop()
    return rows
