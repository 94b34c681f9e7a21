"""Durations and ages as kubectl prints them: HumanDuration
(k8s.io/apimachinery/pkg/util/duration), RFC 3339 timestamps, and
translateTimestampSince (the AGE column); Go's time.ParseDuration and
metav1.Duration's printing, for configuration files and flags. Pure."""
from __future__ import annotations

import re
from datetime import datetime, timezone


def human_duration(seconds: float) -> str:
    """duration.HumanDuration, rule for rule."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def since(ts: str | None, now: datetime) -> str:
    """translateTimestampSince: "<unknown>" for a zero/absent time."""
    t = parse_time(ts)
    return "<unknown>" if t is None else human_duration((now - t).total_seconds())


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds ("1h0m0s", "500ms", "-1s", "0")."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def go_duration(seconds: float) -> str:
    """A duration as Go's metav1.Duration prints it (30 -> "30s", 3600 -> "1h0m0s")."""
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    s_text = f"{s:.9f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{sign}{int(h)}h{int(m)}m{s_text}"
    if m:
        return f"{sign}{int(m)}m{s_text}"
    return sign + s_text
