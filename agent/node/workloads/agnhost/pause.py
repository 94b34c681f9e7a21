"""`agnhost pause`: keep a container running so that commands can be exec'd into it.

Mirrors test/images/agnhost/pause/pause.go: prints "Paused", then waits;
SIGINT exits 1, SIGTERM exits 2 (the "exiting N" line pause.go means to
print is never reached, os.Exit comes first). It is agnhost's default
command, so every `e2epod.NewAgnhostPod` without arguments runs it.
"""

from __future__ import annotations

import os
import signal
import sys

from agent.node.workloads.agnhost import flags


def main(argv: list[str]) -> int:
    flags.parse_or_exit("pause", [], argv, "Pauses the execution")
    for signum, code in ((signal.SIGINT, 1), (signal.SIGTERM, 2)):
        signal.signal(signum, lambda _s, _f, c=code: os._exit(c))
    sys.stdout.write("Paused\n")        # after the handlers: a SIGTERM right after must exit 2
    sys.stdout.flush()
    while True:
        signal.pause()
