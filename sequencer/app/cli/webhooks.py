"""``sequencer webhooks parked``: bookings from Cal.com or Calendly that wait for a person.

With ``webhook_unknown_attendee = "park"``, a booking made through a tool by an address we
did not know is stored marked for review. ``parked`` lists them with what the booking form
said (the delivery as the tool sent it); keep one with ``sequencer meetings review ID``,
refuse it with ``sequencer meetings cancel ID``.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from sequencer.app.cli.common import console, open_session
from sequencer.core.models import Prospect
from sequencer.meetings import deliveries

app = typer.Typer(no_args_is_help=True, help="Bookings from Cal.com and Calendly parked for review.")


@app.command("parked")
def parked_command(as_json: bool = typer.Option(False, "--json", help="One JSON object per line, delivery included.")
                   ) -> None:
    """The parked bookings: meeting, tool, start, prospect, AE, why, and who filled the booking form."""
    with open_session() as session:
        rows = [(meeting, delivery, session.get(Prospect, meeting.prospect_id))
                for meeting, delivery in deliveries.parked(session)]
    if as_json:
        for meeting, delivery, prospect in rows:
            typer.echo(json.dumps({"meeting_id": meeting.id, "source": meeting.source,
                                   "external_id": meeting.external_id, "start": meeting.start_at.isoformat(),
                                   "prospect": prospect.email if prospect else None, "ae": meeting.ae,
                                   "state": meeting.state, "review": meeting.review,
                                   "trigger": delivery.get("trigger"), "delivery": delivery.get("delivery")}))
        return
    if not rows:
        console.print("no parked bookings")
        return
    table = Table("meeting", "tool", "start", "prospect", "AE", "state", "why")
    for meeting, _delivery, prospect in rows:
        table.add_row(str(meeting.id), meeting.source, f"{meeting.start_at:%Y-%m-%d %H:%M} UTC",
                      prospect.email if prospect else "-", meeting.ae, meeting.state, meeting.review)
    console.print(table)
