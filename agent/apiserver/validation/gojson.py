"""The error Go's `json.Unmarshal(b, &map[string]interface{}{})` returns,
which kube-apiserver puts verbatim in the message of a docker config Secret
whose .dockercfg / .dockerconfigjson is not a JSON object:

    data[.dockerconfigjson]: Invalid value: "<secret contents redacted>":
        invalid character 'x' looking for beginning of value

A port of encoding/json's scanner contexts (scanner.go): syntax errors are
found first (Unmarshal checks the whole input before decoding), then a
valid value that is not an object (or null) is an UnmarshalTypeError.
"""
from __future__ import annotations

from agent.api.syntax import go_quote

_WS = b" \t\r\n"
_EOF = "unexpected end of JSON input"


class _SyntaxError(Exception):
    pass


def _quote_char(c: int) -> str:
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


class _Scanner:
    def __init__(self, data: bytes):
        self.data, self.i = data, 0

    def _peek(self) -> int | None:
        return self.data[self.i] if self.i < len(self.data) else None

    def _next(self) -> int:
        c = self._peek()
        if c is None:
            raise _SyntaxError(_EOF)
        self.i += 1
        return c

    def _ws(self) -> int | None:
        while self._peek() is not None and self.data[self.i] in _WS:
            self.i += 1
        return self._peek()

    @staticmethod
    def _bad(c: int, context: str) -> _SyntaxError:
        return _SyntaxError(f"invalid character {_quote_char(c)} {context}")

    def value(self) -> str:
        c = self._ws()
        if c is None:
            raise _SyntaxError(_EOF)
        self.i += 1
        if c == ord("{"):
            return self._object()
        if c == ord("["):
            return self._array()
        if c == ord('"'):
            self._string()
            return "string"
        if c == ord("-") or ord("0") <= c <= ord("9"):
            self._number(c)
            return "number"
        for word, kind in ((b"true", "bool"), (b"false", "bool"), (b"null", "null")):
            if c == word[0]:
                self._literal(word)
                return kind
        raise self._bad(c, "looking for beginning of value")

    def _object(self) -> str:
        c = self._ws()
        if c == ord("}"):
            self.i += 1
            return "object"
        while True:
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            self.i += 1
            if c != ord('"'):
                raise self._bad(c, "looking for beginning of object key string")
            self._string()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            self.i += 1
            if c != ord(":"):
                raise self._bad(c, "after object key")
            self.value()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            self.i += 1
            if c == ord("}"):
                return "object"
            if c != ord(","):
                raise self._bad(c, "after object key:value pair")

    def _array(self) -> str:
        if self._ws() == ord("]"):
            self.i += 1
            return "array"
        while True:
            self.value()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            self.i += 1
            if c == ord("]"):
                return "array"
            if c != ord(","):
                raise self._bad(c, "after array element")

    def _string(self) -> None:
        while True:
            c = self._next()
            if c == ord('"'):
                return
            if c < 0x20:
                raise self._bad(c, "in string literal")
            if c == ord("\\"):
                e = self._next()
                if e == ord("u"):
                    for _ in range(4):
                        h = self._next()
                        if chr(h) not in "0123456789abcdefABCDEF":
                            raise self._bad(h, "in \\u hexadecimal character escape")
                elif chr(e) not in '"\\/bfnrt':
                    raise self._bad(e, "in string escape code")

    def _digits(self, context: str) -> None:
        c = self._next()
        if not ord("0") <= c <= ord("9"):
            raise self._bad(c, context)
        while (d := self._peek()) is not None and ord("0") <= d <= ord("9"):
            self.i += 1

    def _number(self, first: int) -> None:
        if first == ord("-"):
            c = self._next()
            if not ord("0") <= c <= ord("9"):
                raise self._bad(c, "in numeric literal")
            first = c
        if first != ord("0"):
            while (d := self._peek()) is not None and ord("0") <= d <= ord("9"):
                self.i += 1
        if self._peek() == ord("."):
            self.i += 1
            self._digits("after decimal point in numeric literal")
        if self._peek() in (ord("e"), ord("E")):
            self.i += 1
            if self._peek() in (ord("+"), ord("-")):
                self.i += 1
            self._digits("in exponent of numeric literal")

    def _literal(self, word: bytes) -> None:
        for expected in word[1:]:
            c = self._next()
            if c != expected:
                raise self._bad(c, f"in literal {word.decode()} (expecting {_quote_char(expected)})")


def unmarshal_object_error(data: bytes) -> str | None:
    """None when `data` unmarshals into a map[string]interface{}, else Go's error text."""
    s = _Scanner(data)
    try:
        kind = s.value()
        c = s._ws()
        if c is not None:
            raise s._bad(c, "after top-level value")
    except _SyntaxError as e:
        return str(e)
    if kind in ("object", "null"):
        return None
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
