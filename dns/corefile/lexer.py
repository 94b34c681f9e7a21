"""Corefile text -> tokens, as the Caddyfile lexer CoreDNS uses reads it.

Tokens are separated by white space; a `"` starts a quoted token that may hold
spaces and newlines (`\\"` escapes a quote); `#` at the start of a token
comments out the rest of the line. Each token keeps its line number (the one
it starts on), which is how the parser tells a directive's arguments (same
line) from the next directive. Environment references `{$NAME}` and
`{%NAME%}` are replaced in each token, an unset variable by "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENV = re.compile(r"\{\$([^}]*)\}|\{%([^%]*)%\}")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    line: int
    file: str = "Corefile"
    quoted: bool = False


def replace_env(text: str, env: dict) -> str:
    return _ENV.sub(lambda m: env.get(m.group(1) if m.group(1) is not None else m.group(2), ""), text)


def tokenize(text: str, file: str = "Corefile", env: dict | None = None) -> list[Token]:
    env = {} if env is None else env
    out: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == '"':
            start_line, buf = line, []
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    i += 1
                if text[i] == "\n":
                    line += 1
                buf.append(text[i])
                i += 1
            i += 1  # the closing quote (an unterminated string ends at EOF, as Caddy's does)
            out.append(Token(replace_env("".join(buf), env), start_line, file, quoted=True))
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            out.append(Token(replace_env(text[start:i], env), line, file))
    return out
