"""Cron schedules as a CronJob reads them (robfig/cron's ParseStandard, which
the CronJob controller and kube-apiserver's validation use): five fields
(minute hour day-of-month month day-of-week) with `*`, `?`, lists, ranges,
`/` steps and the month and weekday names; the descriptors @yearly,
@annually, @monthly, @weekly, @daily, @midnight, @hourly; a day-of-month and
day-of-week that are both restricted match either (as in Vixie cron).
Times are computed in an IANA time zone (spec.timeZone; UTC by default).

`parse(text)` -> Schedule or ValueError worded like robfig/cron's;
`Schedule.next_after(t, tz)` the first activation strictly after `t`;
`zone(name)` a tzinfo or ValueError("unknown time zone X"). Pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (name, low, high, names) of the five fields
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, MONTHS),
          ("day of week", 0, 6, DAYS))


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset
    dom_star: bool
    dow_star: bool

    def _day_matches(self, d: datetime) -> bool:
        dom, dow = d.day in self.days, (d.weekday() + 1) % 7 in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime, tz=timezone.utc) -> datetime | None:
        """The first activation after `t` (aware), in UTC; None within 5 years."""
        local = t.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = local + timedelta(days=366 * 5)
        while local < limit:
            if local.month not in self.months:
                y, m = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
                local = datetime(y, m, 1)
            elif not self._day_matches(local):
                local = datetime(local.year, local.month, local.day) + timedelta(days=1)
            elif local.hour not in self.hours:
                local = datetime(local.year, local.month, local.day, local.hour) + timedelta(hours=1)
            elif local.minute not in self.minutes:
                local += timedelta(minutes=1)
            else:
                found = local.replace(tzinfo=tz).astimezone(timezone.utc)
                if found > t:
                    return found
                local += timedelta(minutes=1)
        return None

    def last_between(self, after: datetime, upto: datetime, tz=timezone.utc,
                     limit: int = 100) -> tuple[datetime | None, int]:
        """The most recent activation in (after, upto] and how many there
        were (counting stops past `limit`, as the controller's does)."""
        last, n, t = None, 0, after
        while n <= limit:
            nxt = self.next_after(t, tz)
            if nxt is None or nxt > upto:
                break
            last, n, t = nxt, n + 1, nxt
        return last, n


def _field(text: str, name: str, low: int, high: int, names: dict) -> tuple[set, bool]:
    out: set = set()
    star = text in ("*", "?") or text.startswith("*") or text.startswith("?")
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"failed to parse int from {step_text}: strconv.Atoi: parsing "
                                 f'"{step_text}": invalid syntax' if not step_text.isdigit()
                                 else f"step of range should be a positive number: {part}")
            step = int(step_text)
        if rng in ("*", "?"):
            lo, hi = low, high
        else:
            a, dash, b = rng.partition("-")
            lo = _value(a, names)
            hi = _value(b, names) if dash else (high if step_text else lo)
        if lo < low:
            raise ValueError(f"beginning of range ({lo}) below minimum ({low}): {part}")
        if hi > high:
            raise ValueError(f"end of range ({hi}) above maximum ({high}): {part}")
        if lo > hi:
            raise ValueError(f"beginning of range ({lo}) beyond end of range ({hi}): {part}")
        out.update(range(lo, hi + 1, step))
    return out, star


def _value(text: str, names: dict) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def parse(text: str) -> Schedule:
    spec = text.strip()
    if not spec:
        raise ValueError("empty spec string")
    if spec.startswith("@"):
        if spec not in DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {spec}")
        spec = DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    sets = [_field(f, *meta) for f, meta in zip(fields, FIELDS)]
    weekdays = {d % 7 for d in sets[4][0]}
    return Schedule(frozenset(sets[0][0]), frozenset(sets[1][0]), frozenset(sets[2][0]), frozenset(sets[3][0]),
                    frozenset(weekdays), sets[2][1], sets[4][1])


def zone(name: str | None):
    """The tzinfo of an IANA zone name (None or "" or "UTC": UTC)."""
    if not name or name == "UTC":
        return timezone.utc
    if name.lower() == "local" or name.startswith("/") or ".." in name:
        raise ValueError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None
