"""What kube-apiserver's decoding does to ConfigMaps and Secrets before its
registry sees them, done here on the JSON form every write arrives in.

- `[]byte` fields (Secret.data values, ConfigMap.binaryData values) are
  base64 in JSON. Go's decoder (base64.StdEncoding: padded, '\\r' and '\\n'
  ignored) refuses anything else, and the request is a 400 before any
  validation:

      Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4

  A value that is accepted is stored re-encoded, as kube stores bytes and
  prints them back canonically ("aGVs\\nbG8=" reads back "aGVsbG8=").
- Secret.stringData is merged into data (stringData wins on a shared key)
  and dropped: the conversion to the internal Secret does this, so it is
  never stored and never returned, on create, update and patch alike.
- A value of the wrong JSON type is Go's UnmarshalTypeError, also a 400.
- Empty maps and a null `immutable` are dropped: Go's omitempty never
  writes them back.

`prepare(kind, obj)` does all of it in place, or raises `DecodeError`
carrying kube's message (the registry answers it as a 400 BadRequest).
"""
from __future__ import annotations

import base64

_ALPHABET = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_NL = b"\r\n"
_JSON_TYPES = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}


class DecodeError(ValueError):
    """The body cannot be decoded into the kind: kube's 400 BadRequest."""


class CorruptInput(ValueError):
    """base64.CorruptInputError: the offset of the first illegal byte."""

    def __init__(self, offset: int):
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def _quantum(src: bytes, si: int) -> tuple[int, bytes, bool]:
    """Go's Encoding.decodeQuantum: (next index, bytes, done)."""
    dbuf, j = [0, 0, 0, 0], 0
    dlen = 4
    while j < 4:
        if si == len(src):
            if j == 0:
                return si, b"", True
            raise CorruptInput(si - j)          # StdEncoding is padded: a short quantum is corrupt
        c = src[si]
        si += 1
        if c in _ALPHABET:
            dbuf[j] = _ALPHABET[c]
            j += 1
            continue
        if c in _NL:
            continue
        if c != ord("="):
            raise CorruptInput(si - 1)
        if j in (0, 1):                          # padding too early
            raise CorruptInput(si - 1)
        if j == 2:                               # "==" expected: one more '=' after newlines
            while si < len(src) and src[si] in _NL:
                si += 1
            if si == len(src):
                raise CorruptInput(len(src))
            if src[si] != ord("="):
                raise CorruptInput(si - 1)
            si += 1
        while si < len(src) and src[si] in _NL:
            si += 1
        if si < len(src):
            raise CorruptInput(si)               # trailing garbage
        dlen = j
        break
    val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
    out = bytes([(val >> 16) & 0xFF, (val >> 8) & 0xFF, val & 0xFF])[:dlen - 1]
    return si, out, dlen < 4


def go_b64decode(text: str) -> bytes:
    """base64.StdEncoding.DecodeString, with its errors."""
    src, si, out = text.encode(), 0, bytearray()
    while si < len(src):
        si, chunk, done = _quantum(src, si)
        out += chunk
        if done:
            break
    return bytes(out)


def _type_error(kind: str, got, field: str, go_type: str) -> DecodeError:
    name = _JSON_TYPES.get(type(got), "object")
    return _bad_request(kind, f"json: cannot unmarshal {name} into Go struct field {kind}.{field} of type {go_type}")


def _bad_request(kind: str, err: str) -> DecodeError:
    return DecodeError(f'{kind} in version "v1" cannot be handled as a {kind}: {err}')


def _bytes_map(kind: str, obj: dict, field: str) -> None:
    m = obj.get(field)
    if m is None:
        return
    if not isinstance(m, dict):
        raise _type_error(kind, m, field, "map[string][]uint8")
    for key, value in m.items():
        if value is None:
            m[key] = ""
            continue
        if not isinstance(value, str):
            raise _type_error(kind, value, field, "[]uint8")
        try:
            m[key] = base64.b64encode(go_b64decode(value)).decode()
        except CorruptInput as e:
            raise _bad_request(kind, str(e)) from None


def _string_map(kind: str, obj: dict, field: str) -> dict:
    m = obj.get(field)
    if m is None:
        return {}
    if not isinstance(m, dict):
        raise _type_error(kind, m, field, "map[string]string")
    for key, value in m.items():
        if value is None:
            m[key] = ""                          # Go decodes a null string as ""
        elif not isinstance(value, str):
            raise _type_error(kind, value, field, "string")
    return m


def _scalar(kind: str, obj: dict, field: str, want: type, go_type: str) -> None:
    value = obj.get(field)
    if value is not None and not isinstance(value, want):
        raise _type_error(kind, value, field, go_type)


def prepare(kind: str, obj: dict) -> None:
    """Decode-time checks and conversion for ConfigMaps and Secrets; other kinds pass."""
    if not isinstance(obj, dict):
        return
    if kind in ("Secret", "ConfigMap"):
        _scalar(kind, obj, "immutable", bool, "bool")
    if kind == "Secret":
        _scalar(kind, obj, "type", str, "v1.SecretType")
        _bytes_map(kind, obj, "data")
        string_data = _string_map(kind, obj, "stringData")
        obj.pop("stringData", None)
        if string_data:
            data = obj.get("data") or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode((value or "").encode()).decode()
            obj["data"] = data
    elif kind == "ConfigMap":
        _string_map(kind, obj, "data")
        _bytes_map(kind, obj, "binaryData")
    else:
        return
    for field in ("data", "binaryData", "immutable"):
        if field in obj and obj[field] in (None, {}):
            del obj[field]
