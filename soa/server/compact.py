"""thriftpy2's pure-Python compact protocol, with every count and length bounded before use.

thriftpy2's ``TCompactProtocol`` takes container sizes and varints off the wire unchecked: a
24-byte message declaring a list of 2**28 elements of type 0 (which takes no bytes) keeps its
skip loop, and the event loop, busy for seconds, and a varint is read for as long as its
continuation bit is set. ``BoundedCompactProtocol`` overrides only the reads where a count, a
length or a varint comes from the wire (the decoding loops stay thriftpy2's) and refuses, as
``BadMessage``:

- a non-empty container whose element type is not a compact type or takes no bytes (``STOP``);
- a count or length whose elements cannot fit in ``max_bytes`` (the most a message may take);
- a varint longer than 10 bytes; nesting deeper than 64 levels (as cybin's limit).

Every element then takes at least one byte, so the socket adapter's byte limit bounds the work.
Writes are thriftpy2's, unchanged.
"""

from struct import unpack

from thriftpy2.protocol.compact import TTYPES, CompactType, TCompactProtocol, from_zig_zag
from thriftpy2.thrift import TType

from .guard import MAX_DEPTH, BadMessage

_MAX_VARINT = 10
_BOOL_TYPES = (CompactType.TRUE, CompactType.FALSE)
# Least bytes an element of each (thriftpy2) type takes in a compact container.
MINIMUM = {TType.BOOL: 1, TType.BYTE: 1, TType.I16: 1, TType.I32: 1, TType.I64: 1,
           TType.DOUBLE: 8, TType.STRING: 1, TType.BINARY: 1, TType.STRUCT: 1,
           TType.LIST: 1, TType.SET: 1, TType.MAP: 1}


class BoundedCompactProtocol(TCompactProtocol):
    """``TCompactProtocol`` for a server connection (one greenlet). Raises ``BadMessage`` on a
    count, length or varint that cannot be valid; other errors are thriftpy2's."""

    def __init__(self, trans, max_bytes):
        super().__init__(trans)
        self.max_bytes = max_bytes
        self._skipping = 0

    def _varint(self):
        read = self.trans.read
        result = shift = 0
        for _ in range(_MAX_VARINT):
            byte = read(1)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
        raise BadMessage(f"varint longer than {_MAX_VARINT} bytes")

    def _bounded(self, count, minimum, what):
        if count * minimum > self.max_bytes:
            raise BadMessage(f"{what} of {count} cannot fit in a message of at most "
                             f"{self.max_bytes} bytes")
        return count

    def _read_size(self):
        return self._bounded(self._varint(), 1, "length")

    def _read_int(self):
        return from_zig_zag(self._varint())

    def read_message_begin(self):
        proto_id, ver_type = unpack("!BB", self.trans.read(2))
        if proto_id != self.PROTOCOL_ID:
            raise BadMessage(f"bad compact protocol id {proto_id}")
        if ver_type & self.VERSION_MASK != self.VERSION:
            raise BadMessage(f"bad compact version {ver_type & self.VERSION_MASK}")
        seqid = self._varint()
        name = self._read_string()
        return name, (ver_type >> self.TYPE_SHIFT_AMOUNT) & self.TYPE_BITS, seqid

    def _read_field_begin(self):
        header = self.trans.read(1)[0]
        ctype = header & 0x0F
        if ctype == CompactType.STOP:
            return None, 0, 0
        delta = header >> 4
        fid = from_zig_zag(self._varint()) if delta == 0 else self._last_fid + delta
        self._last_fid = fid
        if ctype in _BOOL_TYPES:
            self._bool_value = ctype == CompactType.TRUE
        return None, self._ttype(ctype), fid

    def _ttype(self, ctype, count=1):
        ttype = TTYPES.get(ctype)
        if ttype is None or (count and ttype == TType.STOP):
            raise BadMessage(f"unknown compact type {ctype}")
        return ttype

    def _read_struct_begin(self):
        if len(self._structs) >= MAX_DEPTH:
            raise BadMessage(f"nesting deeper than {MAX_DEPTH} levels")
        super()._read_struct_begin()

    def _read_collection_begin(self):
        size_type = self.trans.read(1)[0]
        count = size_type >> 4
        if count == 15:
            count = self._varint()
        ttype = self._ttype(size_type & 0x0F, count)
        return ttype, self._bounded(count, MINIMUM.get(ttype, 1), "container")

    def _read_map_begin(self):
        count = self._varint()
        if count == 0:
            return TType.STOP, TType.STOP, 0
        types = self.trans.read(1)[0]
        ktype, vtype = self._ttype(types >> 4), self._ttype(types & 0x0F)
        return ktype, vtype, self._bounded(count, MINIMUM[ktype] + MINIMUM[vtype], "map")

    def skip(self, ttype):
        if ttype in (TType.I16, TType.I32, TType.I64):
            self._varint()
        elif ttype in (TType.STRUCT, TType.LIST, TType.SET, TType.MAP):
            if self._skipping + len(self._structs) >= MAX_DEPTH:
                raise BadMessage(f"nesting deeper than {MAX_DEPTH} levels")
            self._skipping += 1
            try:
                super().skip(ttype)
            finally:
                self._skipping -= 1
        else:
            super().skip(ttype)
