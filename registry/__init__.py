"""Service registration and discovery in etcd.

The registry schema (``SCHEMA.md``) is one contract for every language; ``vectors/`` holds the
examples every implementation's tests read. ``Instance`` is a parsed registry value;
``EtcdRegistrar`` keeps instances registered under a lease; ``EtcdResolver`` lists and watches
them and hands subscribers the complete set on every change.
"""

from .instance import Instance, InvalidInstance, instance_key, parse_instance, service_prefix

__all__ = [
    "Instance",
    "InvalidInstance",
    "instance_key",
    "parse_instance",
    "service_prefix",
]
