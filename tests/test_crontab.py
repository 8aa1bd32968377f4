"""`[summary] cron` means what crontab(5) means: each weekday field form checked against computed fire times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailvoice.errors import ConfigError
from mailvoice.spoken.crontab import cron_trigger, crontab_weekdays

UTC = ZoneInfo("UTC")
START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)  # a Sunday
DAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # datetime.weekday() order


def fire_days(expression: str, count: int = 7) -> list[str]:
    """The weekday names and times of the next fires after START (in UTC)."""
    trigger = cron_trigger(expression, "UTC")
    out: list[str] = []
    previous = None
    now = START
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        out.append(f"{DAY[fire.weekday()]} {fire:%d %H:%M}")
        previous, now = fire, fire + timedelta(seconds=1)
    return out


def weekdays_of(expression: str) -> list[str]:
    """The weekday of every fire in the two weeks after START."""
    trigger = cron_trigger(expression, "UTC")
    out: list[str] = []
    previous, now = None, START
    while (fire := trigger.get_next_fire_time(previous, now)) is not None and fire < START + timedelta(days=14):
        out.append(DAY[fire.weekday()])
        previous, now = fire, fire + timedelta(seconds=1)
    return out


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1", ["Mon"]),
        ("6", ["Sat"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("MON-FRI", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("sun", ["Sun"]),
        ("sat,sun", ["Sun", "Sat"]),
        ("1,3,5", ["Mon", "Wed", "Fri"]),
        ("mon,wed,5", ["Mon", "Wed", "Fri"]),
        ("5-7", ["Sun", "Fri", "Sat"]),
        ("0-6", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("1/2", ["Mon", "Wed", "Fri"]),
        ("0,6", ["Sun", "Sat"]),
    ],
)
def test_weekday_field_forms_fire_on_crontab_days(field: str, days: list[str]) -> None:
    fired = weekdays_of(f"0 7 * * {field}")
    # two weeks of fires cover each wanted day exactly twice, in calendar order from Sunday
    assert sorted(set(fired), key=fired.index) == days
    assert all(fired.count(day) == 2 for day in days)
    assert all(day.endswith("07:00") for day in fire_days(f"0 7 * * {field}", 3))


def test_weekday_mornings_example_from_the_issue() -> None:
    # APScheduler 3's own from_crontab reads 1-5 as Tuesday..Saturday: this is what users mean
    assert fire_days("0 7 * * 1-5", 6) == [
        "Mon 02 07:00",
        "Tue 03 07:00",
        "Wed 04 07:00",
        "Thu 05 07:00",
        "Fri 06 07:00",
        "Mon 09 07:00",
    ]


def test_day_of_month_and_weekday_both_restricted_fire_on_either() -> None:
    # crontab(5): "30 9 1 * 5" is the 1st of each month and every Friday (AND would fire only on a Friday 1st)
    assert fire_days("30 9 1 * 5", 6) == [
        "Sun 01 09:30",
        "Fri 06 09:30",
        "Fri 13 09:30",
        "Fri 20 09:30",
        "Fri 27 09:30",
        "Tue 01 09:30",
    ]


def test_six_fields_seconds_first_and_macros() -> None:
    assert fire_days("15 0 7 * * 1-5", 2) == ["Mon 02 07:00", "Tue 03 07:00"]
    assert cron_trigger("15 0 7 * * 1-5", "UTC").get_next_fire_time(None, START).second == 15
    assert fire_days("@weekly", 2) == ["Sun 01 00:00", "Sun 08 00:00"]
    assert fire_days("@daily", 2) == ["Sun 01 00:00", "Mon 02 00:00"]


@pytest.mark.parametrize("bad", ["0 7 * * 8", "0 7 * * fri-mon", "0 7 * * funday", "0 7 * * 1-5/0", "every day"])
def test_bad_weekdays_name_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"summary\.cron"):
        cron_trigger(bad)


def test_weekday_sets() -> None:
    assert crontab_weekdays("1-5") == frozenset({1, 2, 3, 4, 5})
    assert crontab_weekdays("7") == crontab_weekdays("0") == frozenset({0})
