"""What goes wrong writing or reading nftables, whichever way it was written."""
from __future__ import annotations


class NftError(RuntimeError):
    """nft or the kernel refused a command; `line_number`/`line` say which
    line of the transaction (as `nft -f` text)."""

    def __init__(self, message: str, stderr: str = "", line_number: int | None = None, line: str | None = None):
        super().__init__(message)
        self.stderr, self.line_number, self.line = stderr, line_number, line


class NotFound(NftError):
    """The table (or what was listed) does not exist."""
