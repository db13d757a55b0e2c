"""The sending-window guard: a touch waits for the prospect's local working hours."""

from __future__ import annotations

from sequencer.engine import enrollments
from sequencer.engine.guards import GO, TouchContext, Verdict, defer
from sequencer.sequences import schedule


def window_guard(ctx: TouchContext) -> Verdict:
    window = enrollments.window_of(ctx.extra["definition"])
    tz, country = ctx.prospect.timezone, ctx.prospect.country
    opens = schedule.next_open(ctx.now, window, tz, country)
    if opens <= ctx.now:
        return GO
    local_day = ctx.now.astimezone(schedule.zone(tz)).date()
    holiday = schedule.holiday_name(country, local_day)
    why = f"public holiday in {country}: {holiday}" if holiday else "outside the sending window"
    return defer("window", opens, f"{why}; next window opens {opens.astimezone(schedule.zone(tz)):%a %Y-%m-%d %H:%M} {tz}")
