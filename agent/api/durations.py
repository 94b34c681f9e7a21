"""Durations and ages as kubectl prints them: HumanDuration
(k8s.io/apimachinery/pkg/util/duration), RFC 3339 timestamps, and
translateTimestampSince (the AGE column). Pure."""
from __future__ import annotations

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
