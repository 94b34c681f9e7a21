"""The protobuf wire format: varints, tags, length-delimited fields.

Owns the bytes and nothing above them: writing a varint or a tagged field,
and reading a message back as a flat sequence of (field number, wire type,
value). What a field means is the schema's business (schema.py, codec.py).
Every malformed input -- a varint that runs off the end or past 64 bits, a
length beyond the data, a wire type protobuf does not define -- raises
ProtobufError, so callers handling client input catch one exception type.
"""
from __future__ import annotations

from collections.abc import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5           # the wire types Kubernetes' messages use
_MASK64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """Bytes that are not a valid Kubernetes protobuf message, or a kind we cannot encode."""


# ---- writing ----------------------------------------------------------------------

def varint(n: int) -> bytes:
    """A base-128 varint; negative numbers as 64-bit two's complement (10 bytes), as Go writes int32/int64."""
    n &= _MASK64
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field: int, data: bytes) -> bytes:
    """A LEN field: a string, bytes or an embedded message."""
    return tag(field, LEN) + varint(len(data)) + data


def varint_field(field: int, n: int) -> bytes:
    return tag(field, VARINT) + varint(n)


# ---- reading ----------------------------------------------------------------------

def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at data[pos:] and the position after it."""
    result = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result > _MASK64:
                raise ProtobufError("varint longer than 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of one message, in wire order.

    value is an int for VARINT, I64 and I32 (I64/I32 as unsigned little-endian
    integers) and the payload bytes for LEN.
    """
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise ProtobufError(f"invalid field number {number}")
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == LEN:
            length, pos = read_varint(data, pos)
            if length > end - pos:
                raise ProtobufError(f"field {number}: length {length} runs past the end of the message")
            value, pos = bytes(data[pos:pos + length]), pos + length
        elif wire_type in (I64, I32):
            size = 8 if wire_type == I64 else 4
            if size > end - pos:
                raise ProtobufError(f"field {number}: truncated fixed-width value")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


def packed_varints(data: bytes) -> list[int]:
    """The varints of a packed repeated field."""
    out, pos = [], 0
    while pos < len(data):
        n, pos = read_varint(data, pos)
        out.append(n)
    return out


def signed(n: int, bits: int) -> int:
    """A varint read back as Go's int32/int64 (two's complement, truncated to `bits`)."""
    n &= (1 << bits) - 1
    return n - (1 << bits) if n >> (bits - 1) else n
