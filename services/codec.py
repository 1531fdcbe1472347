"""Thrift structs in database columns: compact-protocol bytes, and a stable digest."""

import hashlib

from thriftpy2.protocol import TCompactProtocolFactory
from thriftpy2.utils import deserialize, serialize

_PROTOCOL = TCompactProtocolFactory()


def encode(struct):
    return serialize(struct, _PROTOCOL)


def decode(cls, blob):
    """An instance of ``cls`` from ``encode``'s bytes; None for None."""
    if blob is None:
        return None
    return deserialize(cls(), bytes(blob), _PROTOCOL)


def digest(struct):
    return hashlib.sha256(encode(struct)).hexdigest()
