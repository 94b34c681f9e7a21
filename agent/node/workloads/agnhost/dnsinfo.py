"""`agnhost dns-suffix`, `dns-server-list` and `etc-hosts`: what the pod's resolver is told.

Mirrors test/images/agnhost/dns/{common,dns}.go on Linux. The DNS e2e tests
exec them in a pod to check dnsPolicy and dnsConfig:

  dns-suffix       the `search` line of /etc/resolv.conf, comma-joined
  dns-server-list  the first `nameserver` line's address, the same way
  etc-hosts        /etc/hosts, followed by one newline (fmt.Println)

Like dns.go, only the first matching line counts, it is split on single
spaces, and a file without one (or no file) panics: "panic: ..." on stderr,
exit status 2.
"""

from __future__ import annotations

import sys

from agent.node.workloads.agnhost import flags

RESOLV_CONF = "/etc/resolv.conf"
ETC_HOSTS = "/etc/hosts"


class GoPanic(Exception):
    """A Go panic: its value is printed after "panic: "."""


def read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as exc:
        raise GoPanic(f"open {path}: {exc.strerror.lower()}") from None


def first_line_fields(text: str, keyword: str) -> list[str]:
    """dns.go's loop: the first line starting with `keyword`, split on " ", minus the keyword."""
    for line in text.split("\n"):
        if line.startswith(keyword):
            return line.split(" ")[1:]
    raise GoPanic("Could not find DNS search list!")


def dns_suffix_list(resolv_conf: str = RESOLV_CONF) -> list[str]:
    return first_line_fields(read_file(resolv_conf), "search")


def dns_server_list(resolv_conf: str = RESOLV_CONF) -> list[str]:
    return first_line_fields(read_file(resolv_conf), "nameserver")


def _run(command: str, argv: list[str], produce) -> int:
    flags.parse_or_exit(command, [], argv)
    try:
        text = produce()
    except GoPanic as exc:
        sys.stderr.write(f"panic: {exc}\n\ngoroutine 1 [running]:\nmain.main()\n")
        return 2
    sys.stdout.write(text + "\n")
    return 0


def main_dns_suffix(argv: list[str]) -> int:
    return _run("dns-suffix", argv, lambda: ",".join(dns_suffix_list()))


def main_dns_server_list(argv: list[str]) -> int:
    return _run("dns-server-list", argv, lambda: ",".join(dns_server_list()))


def main_etc_hosts(argv: list[str]) -> int:
    return _run("etc-hosts", argv, lambda: read_file(ETC_HOSTS))
