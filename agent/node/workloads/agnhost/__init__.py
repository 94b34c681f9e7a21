"""The e2e-test-images/agnhost image, without Go: one module per subcommand.

agnhost is the Swiss-army binary of Kubernetes' e2e tests
(test/images/agnhost in kubernetes/kubernetes, image 2.53). A Pod runs
`/agnhost <subcommand> [flags]`; this package answers as that binary does,
to the byte where a test reads the bytes. Served here:

  netexec          netexec.py (+ dial.py): the HTTP/UDP echo server
  serve-hostname   servehostname.py: the hostname over HTTP, TCP or UDP
  porter           porter.py: SERVE_PORT_<n> values on ports, TLS too
  test-webserver   testwebserver.py: the file system over HTTP (Go's FileServer)
  connect          connect.py: one connection attempt, its failure named
  dns-suffix, dns-server-list, etc-hosts   dnsinfo.py: the resolver's view
  pause            pause.py: the image's default command

Shared: flags.py (cobra/pflag command lines), gofmt.py (what Go prints),
gohttp.py (net/http's server), tlscert.py (the image's localhost cert).
Any other subcommand is refused as cobra refuses an unknown one.
"""

from __future__ import annotations

import sys

from agent.node.workloads.agnhost import (
    connect,
    dnsinfo,
    flags,
    netexec,
    pause,
    porter,
    servehostname,
    testwebserver,
)

SUBCOMMANDS = {
    "connect": connect.main,
    "dns-server-list": dnsinfo.main_dns_server_list,
    "dns-suffix": dnsinfo.main_dns_suffix,
    "etc-hosts": dnsinfo.main_etc_hosts,
    "netexec": netexec.main,
    "pause": pause.main,
    "porter": porter.main,
    "serve-hostname": servehostname.main,
    "test-webserver": testwebserver.main,
}

HELP = """agnhost: the e2e test image's subcommands, as nsplane serves them

Usage:
  agnhost [command]

Available Commands:
""" + "".join(f"  {name}\n" for name in SUBCOMMANDS) + """
Use "agnhost [command] --help" for more information about a command.
"""


def main(argv: list[str] | None = None) -> int:
    """`agnhost <subcommand> args...`, with cobra's answers for the rest."""
    argv = sys.argv[1:] if argv is None else argv
    klog = {f.name for f in flags.KLOG}
    while argv and argv[0].startswith("--") and argv[0][2:].split("=", 1)[0] in klog:
        argv = argv[1:]                   # root's persistent klog flags, before the subcommand
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(HELP)
        return 0
    if argv[0] == "--version":
        sys.stdout.write("agnhost version 2.53\n")
        return 0
    run = SUBCOMMANDS.get(argv[0])
    if run is None:
        sys.stderr.write(f'Error: unknown command "{argv[0]}" for "agnhost"\n'
                         "Run 'agnhost --help' for usage.\n")
        return 1
    return run(argv[1:])
