"""Crontab lines read as crontab(5) reads them, turned into APScheduler 3 triggers.

APScheduler 3 numbers weekdays from Monday = 0, so its own `from_crontab("0 7 * * 1-5")` fires Tuesday to
Saturday. Here the weekday field is expanded with crontab's numbering (0 and 7 = Sunday, names, ranges, lists,
steps) into a set of days and handed to APScheduler by name, which has only one meaning. When both the day of
month and the weekday are restricted, crontab fires when either matches: an OrTrigger of the two.
"""

from __future__ import annotations

import re
from typing import Any

from mailvoice.errors import ConfigError

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ELEMENT = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?$")
_FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")


def _weekday(token: str, expression: str, key: str) -> int:
    """A crontab weekday number (0-7) or name as 0..7; ConfigError otherwise."""
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in _NAMES and len(token) == 3:
        return _NAMES.index(token)
    raise ConfigError(
        f"setting {key} = {expression!r} is invalid: weekday {token!r} is not 0-7 (0 and 7 = Sunday) or a name "
        "such as mon"
    )


def crontab_weekdays(field: str, *, expression: str = "", key: str = "summary.cron") -> frozenset[int]:
    """The days a crontab weekday field means, 0 = Sunday ... 6 = Saturday ("1-5" -> Monday to Friday)."""
    days: set[int] = set()
    for element in field.lower().split(","):
        m = _ELEMENT.match(element)
        if m is None:
            raise ConfigError(f"setting {key} = {expression or field!r} is invalid: weekday field part {element!r}")
        span, step = m.group(1), int(m.group(2) or 1)
        if step < 1:
            raise ConfigError(f"setting {key} = {expression or field!r} is invalid: step 0 in {element!r}")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low, expression or field, key)
            last = _weekday(high, expression or field, key) if high else (6 if m.group(2) else first)
            if first > last:
                raise ConfigError(
                    f"setting {key} = {expression or field!r} is invalid: weekday range {span!r} runs backwards "
                    "(write it as a list, e.g. fri,sat,sun)"
                )
        days.update(d % 7 for d in range(first, last + 1, step))
    return frozenset(days)


def _apscheduler_weekdays(days: frozenset[int]) -> str:
    return ",".join(_NAMES[d] for d in sorted(days)) if len(days) < 7 else "*"


def cron_trigger(expression: str, timezone: str = "", *, key: str = "summary.cron") -> Any:
    """A trigger from a crontab line (5 fields or an @macro), or 6 fields with seconds first; ConfigError names
    the key."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    line = _MACROS.get(expression.strip().lower(), expression)
    fields = line.split()
    if len(fields) not in (5, 6):
        raise ConfigError(
            f"setting {key} = {expression!r} is invalid: expected a crontab line such as "
            "'0 7 * * 1-5' (minute hour day month weekday; 0 and 7 = Sunday), or six fields with seconds first"
        )
    if len(fields) == 5:
        fields = ["0", *fields]
    values = dict(zip(_FIELDS, fields, strict=True))
    dow = values["day_of_week"]
    values["day_of_week"] = _apscheduler_weekdays(crontab_weekdays(dow, expression=expression, key=key))
    tz = timezone or None
    try:
        if not values["day"].startswith("*") and not dow.startswith("*"):
            # crontab(5): with both day fields restricted, either one matching is enough
            by_date = CronTrigger(**{**values, "day_of_week": "*"}, timezone=tz)
            by_weekday = CronTrigger(**{**values, "day": "*"}, timezone=tz)
            return OrTrigger([by_date, by_weekday])
        return CronTrigger(**values, timezone=tz)
    except (ValueError, LookupError) as exc:
        raise ConfigError(f"setting {key} = {expression!r} is invalid: {exc}") from exc
