"""Testing helpers shipped with soa: real etcd fixtures, service processes, polling.

The pytest plugin (``soa.testing.plugin``, registered as a pytest11 entry point) provides the
``etcd``, ``etcd_cluster`` and ``etcd_config`` fixtures. ``wait_until`` polls a condition with a
deadline; tests never sleep to let things settle.
"""

from .poll import wait_until

__all__ = ["wait_until"]
