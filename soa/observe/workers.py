"""One scrape of a pre-fork instance is the sum over its workers.

Each worker exports its metric families on a Unix socket, ``{directory}/{pid}.sock``, in a
directory the master creates for the instance (``WorkerExport``): a connection gets one JSON
dump of every sample, taken at that moment, then the socket closes. On each scrape the master
reads every worker's dump at once (``collect_workers``) and adds them up (``merge``): counters,
histograms and most gauges are summed; ``process_start_time_seconds`` takes the earliest and
``process_max_fds``/``python_info`` the largest. So the calls made by any worker show in the
very next scrape, exactly. A worker that died takes its counts with it (the sum drops, which
Prometheus's ``rate`` treats as a counter reset); its replacement starts from zero.
Everything runs in gevent greenlets; a worker that does not answer within the timeout is left
out of that scrape, and a socket nobody listens on any more is removed.
"""

import glob
import json
import logging
import os
import socket

import gevent
from gevent import socket as gsocket

log = logging.getLogger("soa.metrics")
_EARLIEST = {"process_start_time_seconds"}
_LARGEST = {"process_max_fds", "python_info"}


def dump(registry):
    """Every family of ``registry`` as JSON-able data: ``[[name, type, doc, samples]]``."""
    return [[m.name, m.type, m.documentation, [[s.name, s.labels, s.value] for s in m.samples]]
            for m in registry.collect()]


def merge(dumps):
    """prometheus-client ``Metric`` families adding up ``dumps`` (see the module docstring)."""
    from prometheus_client.metrics_core import Metric

    families = {}
    for data in dumps:
        for name, typ, doc, samples in data:
            entry = families.get(name)
            if entry is None:
                entry = families[name] = (typ, doc, {})
            values = entry[2]
            for sample_name, labels, value in samples:
                key = (sample_name, tuple(sorted(labels.items())))
                old = values.get(key)
                if old is None:
                    values[key] = value
                elif sample_name in _EARLIEST:
                    values[key] = min(old, value)
                elif sample_name in _LARGEST:
                    values[key] = max(old, value)
                else:
                    values[key] = old + value
    out = []
    for name, (typ, doc, values) in families.items():
        metric = Metric(name, doc, typ)
        for (sample_name, labels), value in values.items():
            metric.add_sample(sample_name, dict(labels), value)
        out.append(metric)
    return out


class WorkerExport:
    """Serves ``dump(registry)`` on ``{directory}/{pid}.sock`` until ``stop()``."""

    def __init__(self, directory, registry):
        self.path = os.path.join(directory, f"{os.getpid()}.sock")
        self.registry = registry
        self._server = None

    def start(self):
        from gevent.server import StreamServer

        listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(16)
        self._server = StreamServer(listener, self._handle)
        self._server.start()
        return self

    def _handle(self, sock, _address):
        try:
            sock.sendall(json.dumps(dump(self.registry)).encode())
        except Exception:  # noqa: BLE001 -- the master just misses this worker once
            log.exception("exporting metrics to the master failed")
        finally:
            sock.close()

    def stop(self):
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout=1)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def read_worker(path, timeout):
    """One worker's dump, or None (gone: its socket is removed; slow: skipped)."""
    sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (ConnectionRefusedError, FileNotFoundError):
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
    except (OSError, ValueError) as e:
        log.warning("metrics of worker %s: %s", os.path.basename(path), e)
        return None
    finally:
        sock.close()


def collect_workers(directory, timeout=1.0):
    """The merged families of every worker exporting in ``directory``."""
    paths = sorted(glob.glob(os.path.join(directory, "*.sock")))
    jobs = [gevent.spawn(read_worker, path, timeout) for path in paths]
    gevent.joinall(jobs, timeout=timeout + 0.5)
    return merge([job.value for job in jobs if job.successful() and job.value])
