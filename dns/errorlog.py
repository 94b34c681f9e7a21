"""CoreDNS's `errors` plugin: a failed query is one `[ERROR] plugin/errors:` line on stdout.

    [ERROR] plugin/errors: 2 foo.example.org. A: read udp ->10.0.0.53:53: i/o timeout

(rcode, name, type, then what went wrong). `consolidate DURATION REGEXP`
folds the errors matching REGEXP into one line per DURATION:
`[WARNING] 3 errors like '^read udp .* i/o timeout$' occurred in last 30s`.
"""

from __future__ import annotations

import re
import sys
import threading

from dns.wire import qtype_name

RCODE_REFUSED = 5


def _print(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


def _duration(seconds: float) -> str:
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)}m0s"
    return f"{seconds:g}s"


class ErrorLog:
    def __init__(self, opts, out=_print) -> None:
        self.rules = [(d, re.compile(p), p) for d, p in opts.consolidate]
        self.out = out
        self.counts = [0] * len(self.rules)
        self._lock = threading.Lock()

    def __call__(self, q, rcode: int, forwarder) -> None:
        name = ".".join(q.labels) + "."
        if rcode == RCODE_REFUSED:
            reason = f"concurrent queries exceeded maximum {forwarder.max_concurrent}"
        elif not [i for i in range(len(forwarder.upstreams)) if i not in forwarder.disabled]:
            reason = "no healthy proxies"
        else:
            ups = ",".join(forwarder.name(i) for i in range(len(forwarder.upstreams)))
            reason = f"read udp ->{ups}: i/o timeout"
        self.report(f"{rcode} {name} {qtype_name(q.qtype)}: {reason}", reason)

    def report(self, line: str, reason: str) -> None:
        for i, (duration, rx, pattern) in enumerate(self.rules):
            if rx.search(reason):
                with self._lock:
                    self.counts[i] += 1
                    first = self.counts[i] == 1
                if first:
                    t = threading.Timer(duration, self._flush, args=(i,))
                    t.daemon = True
                    t.start()
                return
        self.out(f"[ERROR] plugin/errors: {line}")

    def _flush(self, i: int) -> None:
        with self._lock:
            n, self.counts[i] = self.counts[i], 0
        duration, _, pattern = self.rules[i]
        if n:
            self.out(f"[WARNING] {n} errors like '{pattern}' occurred in last {_duration(duration)}")
