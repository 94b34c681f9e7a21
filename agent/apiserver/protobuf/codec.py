"""One Kubernetes message <-> its JSON object, driven by the compiled schema.

Decoding renders what kube-apiserver's JSON would show for the Go struct the
bytes unmarshal into:
  - value scalars with omitempty are left out when zero (Go writes them on the
    wire anyway), value scalars without it always appear;
  - pointers, slices, maps and []byte appear only when set (a pointer keeps an
    explicit zero/false), else are omitted (omitempty) or null;
  - value structs always appear (`"status": {}`), unless omitzero and zero;
  - inline structs are merged into their parent.
Encoding writes what Go's generated marshallers write: fields in number
order, every value field even when zero, pointers only when set, map entries
sorted by key, repeated scalars unpacked. Unknown JSON keys have no field
number and are dropped; unknown field numbers on the wire are skipped.
"""
from __future__ import annotations

import base64
import binascii

from .schema import Field, Message
from .wire import LEN, VARINT, ProtobufError, fields, length_delimited, packed_varints, signed, varint_field

_INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
_SCALAR_ZERO = {"string": "", "int32": 0, "int64": 0, "bool": False, "bytes": ""}
_ZERO_MESSAGES: dict[str, dict] = {}


# ---- Go zero values ----------------------------------------------------------------

def _zero(f: Field):
    """The JSON of field f's Go zero value (for a value field absent on the wire)."""
    if f.message is not None:
        return _zero_message(f.message)
    if f.atom is not None:
        return f.atom.ZERO
    return _SCALAR_ZERO[f.type]


def _zero_message(message: Message) -> dict:
    """The JSON of the empty message, as Go marshals a zero struct (rendered once, copied out)."""
    if message.name not in _ZERO_MESSAGES:
        _ZERO_MESSAGES[message.name] = decode_message(message, b"")
    return _copy(_ZERO_MESSAGES[message.name])


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---- decoding ---------------------------------------------------------------------

def decode_message(message: Message, data: bytes) -> dict:
    values: dict[int, object] = {}
    for number, wire_type, raw in fields(data):
        f = message.by_number.get(number)
        if f is None:
            continue                              # a field newer than our tables: protobuf skips it
        if f.repeated:
            items = values.setdefault(number, [])
            if wire_type == LEN and f.wire_type == VARINT:
                items.extend(_value(f, n) for n in packed_varints(raw))
            else:
                _check_wire_type(message, f, wire_type)
                items.append(_value(f, raw))
        elif f.map:
            _check_wire_type(message, f, wire_type, LEN)
            key, value = _map_entry(message, f, raw)
            values.setdefault(number, {})[key] = value
        else:
            _check_wire_type(message, f, wire_type)
            values[number] = _value(f, raw)
    return _render(message, values)


def _check_wire_type(message: Message, f: Field, wire_type: int, want: int | None = None) -> None:
    want = f.wire_type if want is None else want
    if wire_type != want:
        raise ProtobufError(f"{message.name}.{f.name or f.number}: wire type {wire_type}, expected {want}")


def _value(f: Field, raw):
    """One wire value of field f as JSON (an element, for slices and maps)."""
    t = f.type
    if t == "string":
        return raw.decode("utf-8", errors="replace")   # as Go's JSON encoder does with bad UTF-8
    if t == "int32":
        return signed(raw, 32)
    if t == "int64":
        return signed(raw, 64)
    if t == "bool":
        return raw != 0
    if t == "bytes":
        return base64.b64encode(raw).decode()
    if f.message is not None:
        return decode_message(f.message, raw)
    return f.atom.decode(raw)


def _map_entry(message: Message, f: Field, payload: bytes) -> tuple[str, object]:
    key, value, seen = "", None, False
    for number, wire_type, raw in fields(payload):
        if number == 1:
            if wire_type != LEN:
                raise ProtobufError(f"{message.name}.{f.name}: map key has wire type {wire_type}")
            key = raw.decode("utf-8", errors="replace")
        elif number == 2:
            _check_wire_type(message, f, wire_type)
            value, seen = _value(f, raw), True
    if not seen:
        value = _zero(f)
    return key, value


def _render(message: Message, values: dict[int, object]) -> dict:
    out: dict = {}
    for f in message.fields:
        present = f.number in values
        if f.inline:
            out.update(values[f.number] if present else _zero_message(f.message))
            continue
        if f.nullable:
            if not present:
                if not (f.omitempty or f.omitzero):
                    out[f.name] = None
                continue
            value = values[f.number]
            if f.type == "bytes" and not (f.repeated or f.map) and value == "" and f.omitempty:
                continue                          # an empty []byte, like an empty slice, is "empty"
            out[f.name] = value
            continue
        value = values[f.number] if present else _zero(f)
        is_struct = f.message is not None or f.atom is not None
        if (f.omitzero or (f.omitempty and not is_struct)) and value == _zero(f):
            continue
        out[f.name] = value
    return out


# ---- encoding ---------------------------------------------------------------------

def encode_message(message: Message, obj, path: str) -> bytes:
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise ProtobufError(f"{path}: expected an object, got {_json_type(obj)}")
    out = []
    for f in message.wire_order:
        if f.inline:
            out.append(length_delimited(f.number, encode_message(f.message, obj, path)))
            continue
        value = obj.get(f.name)
        where = f"{path}.{f.name}"
        if f.repeated:
            if value is None:
                continue
            if not isinstance(value, list):
                raise ProtobufError(f"{where}: expected a list, got {_json_type(value)}")
            out += [_encode_value(f, f.number, item, f"{where}[{i}]") for i, item in enumerate(value)]
        elif f.map:
            if value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
                raise ProtobufError(f"{where}: expected an object with string keys, got {_json_type(value)}")
            out += [length_delimited(f.number, _map_entry_bytes(f, key, value[key], where)) for key in sorted(value)]
        elif value is not None or not f.nullable:
            out.append(_encode_value(f, f.number, value, where))
    return b"".join(out)


def _map_entry_bytes(f: Field, key: str, value, where: str) -> bytes:
    entry = length_delimited(1, key.encode("utf-8", errors="replace"))
    if f.type == "bytes" and value is None:
        return entry                              # Go writes no value for a nil []byte
    return entry + _encode_value(f, 2, value, f"{where}[{key!r}]")


def _encode_value(f: Field, number: int, value, where: str) -> bytes:
    t = f.type
    if t == "string":
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ProtobufError(f"{where}: expected a string, got {_json_type(value)}")
        return length_delimited(number, value.encode("utf-8", errors="replace"))
    if t in _INT_RANGE:
        return varint_field(number, _integer(t, value, where))
    if t == "bool":
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise ProtobufError(f"{where}: expected a boolean, got {_json_type(value)}")
        return varint_field(number, int(value))
    if t == "bytes":
        return length_delimited(number, _base64(value, where))
    if f.message is not None:
        return length_delimited(number, encode_message(f.message, value, where))
    try:
        return length_delimited(number, f.atom.encode(value))
    except ProtobufError as err:
        raise ProtobufError(f"{where}: {err}") from None


def _integer(t: str, value, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtobufError(f"{where}: expected an integer, got {_json_type(value)}")
    low, high = _INT_RANGE[t]
    if not low <= value <= high:
        raise ProtobufError(f"{where}: {value} does not fit in an {t}")
    return value


def _base64(value, where: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ProtobufError(f"{where}: expected a base64 string, got {_json_type(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtobufError(f"{where}: not valid base64") from None


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"[:80]
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
