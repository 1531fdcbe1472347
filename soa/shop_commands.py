"""The plain functions behind ``soa up`` and ``soa demo``: etcd, the shop, the demo flow."""

import contextlib
import shutil
import socket
import time
from pathlib import Path

from .config import load_config
from .shop_demo import run_demo
from .shop_runner import Shop, format_status, shop_config, start_etcd, wait_for_stop_signal


def _config_file(config):
    source = Path(config.source)
    if source.is_file():
        return source.resolve()
    candidate = Path(config.root) / "soa.yaml"
    if candidate.is_file():
        return candidate
    from .errors import ConfigError

    raise ConfigError("no soa.yaml to run (pass --config)", source=config.source)


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _etcd_port(config, etcd_port, echo):
    if etcd_port is not None:
        return etcd_port or None
    port = int(config.etcd.endpoints[0].rsplit(":", 1)[1])
    if _port_free(port):
        return port
    echo(f"port {port} is taken; the embedded etcd uses a free port instead")
    return None


def run_up(config, *, etcd_port=None, services=None, timeout=60.0, echo=print):
    """``soa up``: etcd, then every service; status; wait for SIGINT/SIGTERM; stop all."""
    path = _config_file(config)
    root = path.parent
    for name in services or ():
        config.service(name)  # ConfigError naming the known services, before starting anything
    etcd = start_etcd(root / ".soa" / "etcd", _etcd_port(config, etcd_port, echo))
    echo(f"etcd: {etcd.endpoint} (data in {root / '.soa' / 'etcd'})")
    try:
        shop = Shop(path, etcd.endpoint, services=services, log_dir=root / ".soa" / "logs")
    except BaseException:
        etcd.stop()
        raise
    try:
        shop.start(timeout)
        echo(format_status(shop.status()))
        config_flag = "" if path == Path.cwd() / "soa.yaml" else f"--config {path} "
        echo(f"logs in {shop.log_dir}; try `soa {config_flag}--etcd {etcd.endpoint} demo`. "
             "Ctrl-C stops everything.")
        got = wait_for_stop_signal()
        echo(f"{got}: stopping {len(shop.children)} service processes")
    finally:
        removed, left = shop.stop()
        etcd.stop()
    echo(f"stopped; {removed} stale key(s) removed, {left} left in etcd")


def run_demo_against(config, echo=print):
    """``soa demo``: the flow against whatever is registered in the configured etcd."""
    echo(f"soa demo against etcd {','.join(config.etcd.endpoints)} prefix {config.etcd.prefix}")
    with top_around(config, echo):
        summary = run_demo(config, echo)
    return summary


@contextlib.contextmanager
def top_around(config, echo=print):
    """Scrape every registered instance before and after the block, then print the
    ``soa top --once`` table: its rates and percentiles cover the block (the purchase flow)."""
    from .observe.top import Top, table

    watcher = Top(config.etcd)
    try:
        watcher.sample()
        started = time.monotonic()
        yield
        watcher.sample()
        echo(f"soa top --once, over the {time.monotonic() - started:.1f}s of the flow"
             " (metrics: the METRICS column of the status table above):")
        echo(table(watcher.rows()))
    finally:
        watcher.close()


def demo_up(config, echo=print):
    """``soa demo --up``: fresh etcd and shop under ``.soa/demo``, the flow, then stop all."""
    started = time.monotonic()
    path = _config_file(config)
    base = path.parent / ".soa" / "demo"
    shutil.rmtree(base, ignore_errors=True)
    etcd = start_etcd(base / "etcd")
    try:
        demo_path = shop_config(path, base, etcd.endpoint)
        shop = Shop(demo_path, etcd.endpoint, log_dir=base / "logs", pythonpath=[path.parent])
        try:
            count = sum(shop.config.service(s).instances for s in shop.services)
            echo(f"starting etcd {etcd.endpoint} and {count} service processes "
                 f"(data and logs in {base})")
            shop.start()
            echo(format_status(shop.status()))
            echo(f"shop up in {time.monotonic() - started:.1f}s")
            demo_config = load_config(str(demo_path), etcd.endpoint)
            with top_around(demo_config, echo):
                summary = run_demo(demo_config, echo)
        finally:
            _removed, left = shop.stop()
    finally:
        etcd.stop()
    echo(f"stopped everything; {left} key(s) left; total {time.monotonic() - started:.1f}s")
    return summary
