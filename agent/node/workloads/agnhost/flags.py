"""agnhost's command line, parsed as cobra and pflag parse it.

Every agnhost subcommand is a cobra command with pflag flags, so a Pod's
`args:` are read by those rules, not argparse's: `--port=80` or `--port 80`,
a bool flag alone (`--tcp`) or with `=` (`--http=false`, never `--http
false`), ints in Go syntax (`0x50`), durations as Go durations (`3s`), flags
and arguments interleaved, `--` ending the flags. Mistakes end the program
the way cobra ends it: "Error: unknown flag: --bogus" and the usage on
stderr, exit status 1. The klog flags agnhost's root command accepts
(`--v=4`, `--logtostderr`, ...) are accepted and ignored.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from agent.node.workloads.agnhost import gofmt


@dataclass(frozen=True)
class Flag:
    """One pflag flag: its kind decides how its value is read."""

    name: str
    kind: str          # "bool", "int", "string" or "duration"
    default: object
    usage: str = ""


# klog's flags, registered on agnhost's root command (persistent: every subcommand).
KLOG = [Flag("add_dir_header", "bool", False), Flag("alsologtostderr", "bool", False),
        Flag("log_backtrace_at", "string", ""), Flag("log_dir", "string", ""),
        Flag("log_file", "string", ""), Flag("log_file_max_size", "int", 1800),
        Flag("logtostderr", "bool", True), Flag("one_output", "bool", False),
        Flag("skip_headers", "bool", False), Flag("skip_log_headers", "bool", False),
        Flag("stderrthreshold", "string", "2"), Flag("v", "int", 0), Flag("vmodule", "string", "")]


class UsageError(Exception):
    """What cobra prints after "Error: "."""


class Parsed(dict):
    """Flag values by name (dashes kept), plus the positional arguments."""

    args: list[str]


def parse(flags: list[Flag], argv: list[str]) -> Parsed:
    """pflag's parse; raises UsageError with pflag's message."""
    known = {f.name: f for f in flags + KLOG}
    out = Parsed({f.name: f.default for f in flags})
    out.args = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            out.args.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            out.args.append(arg)
            continue
        if not arg.startswith("--"):
            letter = arg[1:2]
            if letter == "h":
                raise HelpRequested()
            raise UsageError(f"unknown shorthand flag: {letter!r} in {arg}")
        name, has_value, value = arg[2:].partition("=")
        if name == "help":
            raise HelpRequested()
        flag = known.get(name)
        if flag is None:
            raise UsageError(f"unknown flag: --{name}")
        if not has_value and flag.kind != "bool":
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: --{name}")
            value, i = argv[i], i + 1
        elif not has_value:
            value = "true"
        out[name] = _convert(flag, value)
    return out


class HelpRequested(Exception):
    """-h or --help: cobra prints the help and exits 0."""


def _convert(flag: Flag, value: str):
    try:
        if flag.kind == "bool":
            return gofmt.parse_bool(value)
        if flag.kind == "int":
            return gofmt.parse_int(value)
        if flag.kind == "duration":
            return gofmt.parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"invalid argument {gofmt.quote(value)} for \"--{flag.name}\" flag: {exc}") from None
    return value


def usage(command: str, flags: list[Flag], short: str = "") -> str:
    """A cobra-style usage block (the flag list, not cobra's exact columns)."""
    lines = [short, "", "Usage:", f"  agnhost {command} [flags]", "", "Flags:"] if short else \
        ["Usage:", f"  agnhost {command} [flags]", "", "Flags:"]
    for f in flags:
        kind = "" if f.kind == "bool" else f" {f.kind}"
        lines.append(f"      --{f.name}{kind}   {f.usage}")
    lines.append(f"  -h, --help   help for {command}")
    return "\n".join(lines) + "\n"


def parse_or_exit(command: str, flags: list[Flag], argv: list[str], short: str = "",
                  max_args: int | None = 0, exact_args: int | None = None) -> Parsed:
    """parse(), ending the program as cobra would on a usage error or --help."""
    try:
        parsed = parse(flags, argv)
        if exact_args is not None and len(parsed.args) != exact_args:
            raise UsageError(f"accepts {exact_args} arg(s), received {len(parsed.args)}")
        if max_args is not None and exact_args is None and len(parsed.args) > max_args:
            raise UsageError(f"accepts at most {max_args} arg(s), received {len(parsed.args)}")
    except HelpRequested:
        sys.stdout.write(usage(command, flags, short))
        raise SystemExit(0) from None
    except UsageError as exc:
        sys.stderr.write(f"Error: {exc}\n{usage(command, flags)}\n")
        raise SystemExit(1) from None
    return parsed
