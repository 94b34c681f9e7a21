"""The apimachinery types whose JSON is not their protobuf shape.

Each atom is a small message on the wire but a single JSON value:

  Time         Timestamp{seconds=1, nanos=2}  -> "2026-01-02T03:04:05Z" (seconds only), zero -> null
  MicroTime    Timestamp{seconds=1, nanos=2}  -> "2026-01-02T03:04:05.123456Z", zero -> null
  IntOrString  {type=1, intVal=2, strVal=3}   -> 8080 or "http"
  Quantity     {string=1}                     -> "500m" (kept as written; zero -> "0")
  FieldsV1     {raw=1}                        -> the embedded JSON object (managedFields)
  ExtraValue   {items=1 (repeated)}           -> ["a", "b"] (UserInfo.extra's values)

`decode(payload)` turns the message bytes into the JSON value, `encode(value)`
the reverse, written as Go writes it (every field of Timestamp and
IntOrString, even when zero; a zero Time as an empty message). `ZERO` is the
JSON of the Go zero value, used when the field is absent on the wire.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from .wire import LEN, VARINT, ProtobufError, fields, length_delimited, signed, varint_field

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_SECONDS = -62135596800                 # 0001-01-01T00:00:00Z, Go's zero time.Time
_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?\Z")


def _expect(wire_type: int, want: int, what: str) -> None:
    if wire_type != want:
        raise ProtobufError(f"{what}: wire type {wire_type}, expected {want}")


# ---- Time, MicroTime -------------------------------------------------------------------

def _timestamp(payload: bytes) -> tuple[int, int]:
    seconds = nanos = 0
    for number, wire_type, value in fields(payload):
        if number in (1, 2):
            _expect(wire_type, VARINT, "Timestamp")
            if number == 1:
                seconds = signed(value, 64)
            else:
                nanos = signed(value, 32)
    return seconds, nanos


def _datetime(seconds: int, micros: int) -> datetime | None:
    if seconds == _GO_ZERO_SECONDS and micros == 0:
        return None
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=micros)
    except OverflowError:
        raise ProtobufError(f"timestamp {seconds}s is outside years 1-9999") from None


def _rfc3339(when: datetime) -> str:
    """Whole seconds in UTC (strftime would not zero-pad years before 1000)."""
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
            f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}")


def _parse_time(value, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtobufError(f"{what}: expected an RFC 3339 time string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ProtobufError(f"{what}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ProtobufError(f"{what}: {value!r} has no time zone")
    return parsed


def _encode_timestamp(when: datetime | None, micro: bool) -> bytes:
    if when is None:
        return b""                               # Go writes a zero Time as an empty message
    delta = when - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000 if micro else 0
    return varint_field(1, seconds) + varint_field(2, nanos)


class Time:
    ZERO = None

    @staticmethod
    def decode(payload: bytes):
        if not payload:
            return None
        seconds, _ = _timestamp(payload)        # Time keeps whole seconds only, as kube-apiserver does
        when = _datetime(seconds, 0)
        return when and _rfc3339(when) + "Z"

    @staticmethod
    def encode(value) -> bytes:
        return _encode_timestamp(_parse_time(value, "Time"), micro=False)


class MicroTime:
    ZERO = None

    @staticmethod
    def decode(payload: bytes):
        if not payload:
            return None
        seconds, nanos = _timestamp(payload)
        when = _datetime(seconds, nanos // 1000)
        return when and f"{_rfc3339(when)}.{when.microsecond:06d}Z"

    @staticmethod
    def encode(value) -> bytes:
        return _encode_timestamp(_parse_time(value, "MicroTime"), micro=True)


# ---- IntOrString, Quantity, FieldsV1 ----------------------------------------------------

class IntOrString:
    ZERO = 0

    @staticmethod
    def decode(payload: bytes):
        kind, int_val, str_val = 0, 0, ""
        for number, wire_type, value in fields(payload):
            if number == 1:
                _expect(wire_type, VARINT, "IntOrString.type")
                kind = signed(value, 64)
            elif number == 2:
                _expect(wire_type, VARINT, "IntOrString.intVal")
                int_val = signed(value, 32)
            elif number == 3:
                _expect(wire_type, LEN, "IntOrString.strVal")
                str_val = value.decode(errors="replace")
        if kind not in (0, 1):
            raise ProtobufError(f"IntOrString: impossible type {kind}")
        return str_val if kind == 1 else int_val

    @staticmethod
    def encode(value) -> bytes:
        if value is None:
            value = 0
        if isinstance(value, str):
            return varint_field(1, 1) + varint_field(2, 0) + length_delimited(3, value.encode())
        if isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31:
            return varint_field(1, 0) + varint_field(2, value) + length_delimited(3, b"")
        raise ProtobufError(f"IntOrString: expected an int32 or a string, got {value!r}")


class Quantity:
    ZERO = "0"

    @staticmethod
    def decode(payload: bytes):
        text = ""
        for number, wire_type, value in fields(payload):
            if number == 1:
                _expect(wire_type, LEN, "Quantity")
                text = value.decode(errors="replace")
        if not text:
            return "0"
        if not _QUANTITY.match(text):
            raise ProtobufError(f"Quantity: {text!r} is not a quantity (e.g. 500m, 1Gi, 2)")
        return text

    @staticmethod
    def encode(value) -> bytes:
        if value is None:
            value = "0"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ProtobufError(f"Quantity: expected a string or a number, got {type(value).__name__}")
        return length_delimited(1, value.encode())


class FieldsV1:
    ZERO = None

    @staticmethod
    def decode(payload: bytes):
        raw = b""
        for number, wire_type, value in fields(payload):
            if number == 1:
                _expect(wire_type, LEN, "FieldsV1")
                raw = value
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):          # RecursionError: absurdly deep nesting
            raise ProtobufError("FieldsV1: the embedded fields are not JSON") from None

    @staticmethod
    def encode(value) -> bytes:
        if value is None:
            return b""
        try:
            raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", errors="replace")
        except (TypeError, ValueError):
            raise ProtobufError("FieldsV1: the fields are not JSON") from None
        return length_delimited(1, raw)


class ExtraValue:
    ZERO = None

    @staticmethod
    def decode(payload: bytes):
        items = []
        for number, wire_type, value in fields(payload):
            if number == 1:
                _expect(wire_type, LEN, "ExtraValue")
                items.append(value.decode(errors="replace"))
        return items

    @staticmethod
    def encode(value) -> bytes:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProtobufError("ExtraValue: expected a list of strings")
        return b"".join(length_delimited(1, v.encode()) for v in value)


ATOMS = {cls.__name__: cls for cls in (Time, MicroTime, IntOrString, Quantity, FieldsV1, ExtraValue)}
