"""Tokens -> server blocks: keys and directives, as Caddy's parser does for CoreDNS.

A Corefile is a list of server blocks, each `KEY [KEY...] { directive... }`
(keys separated by spaces or commas). A directive is the first token of a
line; its arguments are the rest of that line, and a trailing `{` opens a
block of sub-directives that runs to the matching `}`. A block written
`(name) { ... }` is a snippet: `import name` pastes its tokens; `import PATH`
pastes a file's (a glob, relative to the Corefile's folder). When the file
holds one server block, its braces may be left out.

Errors read as Caddy's do: `Corefile:5 - Error during parsing: Unknown
directive 'foo'`. Every directive is checked against the plugins CoreDNS
knows (plugin.cfg); the parser keeps them in file order, config.py sorts them.

`Dispenser` walks one directive's tokens with CoreDNS's controller verbs
(next_arg, remaining_args, next_block, arg_err, errf) for the plugin setups.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from dns.corefile.lexer import Token, tokenize


class CorefileError(Exception):
    """A Corefile that cannot be served; str() is CoreDNS's own wording."""


def parse_error(tok: Token, msg: str) -> CorefileError:
    return CorefileError(f"{tok.file}:{tok.line} - Error during parsing: {msg}")


@dataclass
class Directive:
    name: str
    tokens: list[Token]          # the name, its arguments and its block, as written


@dataclass
class ServerBlock:
    keys: list[Token]
    directives: list[Directive] = field(default_factory=list)


def parse(text: str, file: str = "Corefile", directives: frozenset = frozenset(),
          env: dict | None = None) -> list[ServerBlock]:
    """All server blocks of a Corefile; `directives` are the known plugin names."""
    p = _Parser(tokenize(text, file, env), file, directives, env)
    return p.blocks()


class _Parser:
    def __init__(self, tokens: list[Token], file: str, known: frozenset, env, depth: int = 0) -> None:
        self.toks, self.i = tokens, 0
        self.file, self.known, self.env, self.depth = file, known, env, depth
        self.snippets: dict[str, list[Token]] = {}

    def _peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _eof(self, last: Token) -> CorefileError:
        return parse_error(last, "Unexpected EOF")

    def blocks(self) -> list[ServerBlock]:
        out: list[ServerBlock] = []
        while self._peek() is not None:
            tok = self._peek()
            if tok.text.startswith("(") and tok.text.endswith(")") and not tok.quoted:
                self._snippet()
                continue
            if tok.text == "import" and not tok.quoted:
                self._import_here(tok)
                continue
            out.append(self._server_block(first=not out))
        return out

    def _snippet(self) -> None:
        name_tok = self.toks[self.i]
        self.i += 1
        name = name_tok.text[1:-1]
        if name in self.snippets:
            raise parse_error(name_tok, f"redeclaration of previously declared snippet {name}")
        if self._peek() is None or self._peek().text != "{":
            raise parse_error(name_tok, f"Syntax error: Unexpected token '{name_tok.text}', expecting '{{'")
        self.i += 1
        body = self._until_close(name_tok)
        self.snippets[name] = body

    def _until_close(self, opener: Token) -> list[Token]:
        depth, body = 1, []
        while True:
            tok = self._peek()
            if tok is None:
                raise self._eof(body[-1] if body else opener)
            self.i += 1
            if tok.text == "{" and not tok.quoted:
                depth += 1
            elif tok.text == "}" and not tok.quoted:
                depth -= 1
                if depth == 0:
                    return body
            body.append(tok)

    def _import_here(self, tok: Token) -> None:
        """Replace `import ARG` at self.i with what it names."""
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
        if nxt is None or nxt.line != tok.line:
            raise parse_error(tok, f"Wrong argument count or unexpected line ending after '{tok.text}'")
        self.toks[self.i:self.i + 2] = self._imported(tok, nxt)

    def _imported(self, tok: Token, arg: Token) -> list[Token]:
        if arg.text in self.snippets:
            return list(self.snippets[arg.text])
        if self.depth > 10:
            raise parse_error(tok, "import nested too deeply (a file importing itself?)")
        pattern = arg.text if os.path.isabs(arg.text) else os.path.join(os.path.dirname(self.file), arg.text)
        out: list[Token] = []
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, encoding="utf-8") as f:
                    out += tokenize(f.read(), path, self.env)
            except OSError as exc:
                raise parse_error(arg, f"Could not read tokens while importing {path}: {exc}") from None
        if not out and not glob.has_magic(pattern):
            raise parse_error(arg, f"Could not read tokens while importing {arg.text}: no such file")
        return out

    def _server_block(self, first: bool) -> ServerBlock:
        keys: list[Token] = []
        while True:
            tok = self._peek()
            if tok is None:
                break
            if tok.text == "{" and not tok.quoted:
                break
            if keys and tok.line != keys[-1].line and not keys[-1].text.endswith(","):
                break
            self.i += 1
            for part in tok.text.split(","):
                if part:
                    keys.append(Token(part, tok.line, tok.file, tok.quoted))
        if not keys:
            tok = self._peek()
            raise parse_error(tok, f"Syntax error: Unexpected token '{tok.text}', expecting a server address")
        tok = self._peek()
        if tok is not None and tok.text == "{" and not tok.quoted:
            self.i += 1
            body = self._until_close(tok)
        elif first:
            body, self.i = self.toks[self.i:], len(self.toks)   # one block, braces left out
        else:
            raise parse_error(keys[-1], f"Syntax error: Unexpected token '{keys[-1].text}', expecting '{{'")
        return ServerBlock(keys, self._directives(body))

    def _directives(self, body: list[Token]) -> list[Directive]:
        out: list[Directive] = []
        j = 0
        while j < len(body):
            tok = body[j]
            if tok.text == "import" and not tok.quoted:
                arg = body[j + 1] if j + 1 < len(body) else None
                if arg is None or arg.line != tok.line:
                    raise parse_error(tok, f"Wrong argument count or unexpected line ending after '{tok.text}'")
                body[j:j + 2] = self._imported(tok, arg)
                continue
            if tok.text in ("{", "}") and not tok.quoted:
                raise parse_error(tok, f"Unexpected '{tok.text}' because no matching opening brace"
                                  if tok.text == "}" else "Unexpected '{' on a line of its own")
            if tok.text not in self.known:
                raise parse_error(tok, f"Unknown directive '{tok.text}'")
            k = j + 1
            while k < len(body) and body[k].line == tok.line and (body[k].text != "{" or body[k].quoted):
                k += 1
            if k < len(body) and body[k].line == tok.line:      # a `{` on the directive's line
                depth = 1
                k += 1
                while k < len(body) and depth:
                    if body[k].text == "{" and not body[k].quoted:
                        depth += 1
                    elif body[k].text == "}" and not body[k].quoted:
                        depth -= 1
                    k += 1
                if depth:
                    raise self._eof(body[-1])
            out.append(Directive(tok.text, body[j:k]))
            j = k
        return out


class Dispenser:
    """One plugin's occurrences in a server block, walked as Caddy's Controller is."""

    def __init__(self, name: str, occurrences: list[Directive], keys: list[str],
                 warnings: list | None = None) -> None:
        self.name = name
        self.warnings = [] if warnings is None else warnings   # "[WARNING] plugin/...: ..." lines
        self.occurrences = occurrences
        self.keys = keys          # the server block's keys (zones), normalized
        self._toks: list[Token] = []
        self._i = -1
        self._n = -1
        self._block_line = -1

    def next(self) -> bool:
        """Moves to the next occurrence of the directive; False when there is none."""
        self._n += 1
        if self._n >= len(self.occurrences):
            return False
        self._toks, self._i = self.occurrences[self._n].tokens, 0
        return True

    @property
    def tok(self) -> Token:
        return self._toks[min(self._i, len(self._toks) - 1)]

    def val(self) -> str:
        return self.tok.text

    def next_arg(self) -> bool:
        """The next token when it is on the same line and is not a block's brace."""
        if self._i + 1 >= len(self._toks):
            return False
        nxt, cur = self._toks[self._i + 1], self._toks[self._i]
        if nxt.line != cur.line or (nxt.text == "{" and not nxt.quoted):
            return False
        self._i += 1
        return True

    def remaining_args(self) -> list[str]:
        out = []
        while self.next_arg():
            out.append(self.val())
        return out

    def next_block(self) -> bool:
        """Enters or walks the directive's block: True on each sub-directive's first token."""
        if self._block_line < 0:
            k = self._i + 1
            if k >= len(self._toks) or self._toks[k].text != "{" or self._toks[k].quoted:
                return False
            self._i = k
            self._block_line = 1
        # skip the rest of the current line (arguments that were not read)
        while self._i + 1 < len(self._toks) and self._toks[self._i + 1].line == self._toks[self._i].line \
                and self._toks[self._i].text != "{":
            self._i += 1
        if self._i + 1 >= len(self._toks):
            self._block_line = -1
            return False
        self._i += 1
        if self._toks[self._i].text == "}" and not self._toks[self._i].quoted:
            self._block_line = -1
            return False
        return True

    def arg_err(self) -> CorefileError:
        return parse_error(self.tok, f"Wrong argument count or unexpected line ending after '{self.val()}'")

    def errf(self, msg: str) -> CorefileError:
        return parse_error(self.tok, msg)
