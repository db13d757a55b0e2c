"""An SDR's whole day through the real ``sequencer`` command, in an empty folder (README, "Using it").

init -> a HubSpot export imported with the preset -> a custom signal type -> a misspelled
variable refused by ``sequences check`` -> load -> signals enroll three people (one of them in
two sequences, one of which allows overlap) -> preview -> a sandbox run (every email into a
local Maildir) -> a reply that becomes a task -> a booked meeting stopping both of a
prospect's sequences -> a fix reaching running enrollments with ``load --upgrade running``.
Each command is a subprocess in the folder, as the SDR types it; nothing is set up in Python.
"""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SEQUENCER = str(Path(sys.executable).with_name("sequencer"))
MAYA, DANA, LEE = "maya.chen@brightside.example", "dana.reyes@northwind.example", "lee.park@lumen.example"
# As HubSpot exports contacts: its labels, a "(GMT+01:00) Zone" time zone, "1,200" employees. No
# country, so no public holiday can make the test depend on the day it runs.
HUBSPOT = f"""\
First Name,Last Name,Email,Company Name,Company Domain Name,Job Title,Time Zone,Country/Region,Number of Employees,\
Phone Number,LinkedIn URL,Contact owner
Maya,Chen,{MAYA},Brightside Health,brightside.example,VP Marketing,(GMT+01:00) Europe/Berlin,,"1,200",\
+49 30 5550 1234,https://www.linkedin.com/in/maya-chen,sam.sdr@acme.example
Dana,Reyes,{DANA},Northwind Analytics,northwind.example,Head of Sales,America/New_York,,250,+1 212 555 0100,,\
sam.sdr@acme.example
Lee,Park,{LEE},Lumen Payments,lumen.example,Sales Director,Asia/Tokyo,,80,,,sam.sdr@acme.example
"""
ALL_WEEK = 'window: {days: mon-sun, start: "00:00", end: "23:59"}'  # due whenever the test runs
PRICING = f"""\
name: pricing-page
owner: sam.sdr@acme.example
trigger: {{signals: [pricing_page]}}
{ALL_WEEK}
steps:
  - {{id: hello, kind: email, subject: "Pricing for {{{{ account.name }}}}", template: pricing/hello.txt.j2}}
  - {{kind: wait, business_days: 1}}
  - {{id: call, kind: call, title: "Call {{{{ prospect.first_name }}}} about pricing", template: pricing/call.txt.j2}}
"""


def sequencer(folder: Path, *args: str, code: int = 0) -> str:
    # Only the folder's own sequencer.toml counts: no SEQUENCER_* setting of the machine running the test.
    env = {name: value for name, value in os.environ.items() if not name.startswith("SEQUENCER_")}
    result = subprocess.run([SEQUENCER, *args], cwd=folder, capture_output=True, text=True, timeout=300,
                            env={**env, "COLUMNS": "200"})
    output = result.stdout + result.stderr
    assert result.returncode == code, f"sequencer {' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def as_json(folder: Path, *args: str) -> list | dict:
    return json.loads(sequencer(folder, *args, "--json"))


def test_an_sdr_day_from_an_empty_folder(tmp_path: Path) -> None:
    day = tmp_path
    # --- the workspace: init writes sequencer.toml (a fresh secret) and a starter templates/ --------
    assert "wrote" in sequencer(day, "init")
    starter = day / "templates" / "sequences" / "webinar-follow-up.yaml"
    text = starter.read_text()
    for window in ('window: {days: mon-fri, start: "08:00", end: "17:00"}',):
        assert window in text
        text = text.replace(window, ALL_WEEK)
    starter.write_text(text.replace("name: webinar-follow-up\n", "name: webinar-follow-up\nallow_overlap: true\n"))

    # --- prospects, as HubSpot exports them -----------------------------------------------------
    (day / "contacts.csv").write_text(HUBSPOT)
    assert "3 prospect(s) stored, 0 row(s) refused" in sequencer(day, "prospects", "import", "contacts.csv",
                                                                "--preset", "hubspot")
    maya = as_json(day, "prospects", "show", MAYA)
    assert (maya["timezone"], maya["account"]["name"], maya["account"]["employees"]) == (
        "Europe/Berlin", "Brightside Health", 1200)

    # --- a custom signal type, and a sequence with a misspelled variable ------------------------
    (day / "templates" / "signals.yaml").write_text("types:\n  - webinar_attended\n  - pricing_page\n")
    (day / "templates" / "sequences" / "pricing-page.yaml").write_text(PRICING)
    steps = day / "templates" / "steps" / "pricing"
    steps.mkdir()
    (steps / "hello.txt.j2").write_text("Hi {{ prospect.frist_name }},\n\nYou looked at our pricing.\n\n"
                                        "{{ sender.name }}\n")
    (steps / "call.txt.j2").write_text("Ask {{ prospect.first_name }} what {{ account.name }} needs.\n")
    refused = sequencer(day, "sequences", "check", code=1)
    assert "templates/steps/pricing/hello.txt.j2:1: unknown field prospect.frist_name (did you mean first_name?)" \
        in refused
    (steps / "hello.txt.j2").write_text((steps / "hello.txt.j2").read_text().replace("frist_name", "first_name"))
    assert "ok pricing-page" in sequencer(day, "sequences", "check")
    sequencer(day, "sequences", "load")
    sequencer(day, "mailboxes", "add", "sam@outreach-acme.example", "--display-name", "Sam Rivera",
              "--owner", "sam.sdr@acme.example", "--smtp-host", "127.0.0.1", "--smtp-port", "9")

    # --- signals enroll: Dana and Maya in both sequences (webinar-follow-up allows overlap) -------
    # One by hand, the rest as a file from the webinar tool and the website (one command start each).
    assert "1 enrolled" in sequencer(day, "signal", "webinar_attended", "--email", LEE,
                                     "--data", "webinar=Pipeline basics")
    feed = [{"type": "webinar_attended", "email": email, "webinar": "Pipeline basics"} for email in (MAYA, DANA)]
    feed += [{"type": "pricing_page", "email": email} for email in (MAYA, DANA)]
    (day / "signals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in feed))
    assert "4 signal(s) stored, 0 duplicate(s), 0 refused; 4 enrollment(s) started" in sequencer(
        day, "signals", "import", "signals.jsonl")
    running = as_json(day, "enrollments", "list")
    assert sorted((e["prospect"], e["sequence"]) for e in running) == sorted(
        [(MAYA, "webinar-follow-up"), (DANA, "webinar-follow-up"), (LEE, "webinar-follow-up"),
         (MAYA, "pricing-page"), (DANA, "pricing-page")])

    # --- preview: Maya's calendar and the email as it would leave --------------------------------
    preview = sequencer(day, "sequences", "preview", "pricing-page", "--prospect", MAYA)
    assert "times in Europe/Berlin" in preview
    assert "Subject: Pricing for Brightside Health" in preview and "From: Sam Rivera <sam@outreach-acme.example>" \
        in preview
    assert "| Hi Maya," in preview and "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in preview
    assert "call call  (task for sam.sdr@acme.example" in preview

    # --- a sandbox run: every email into ./outbox, marked ------------------------------------------
    run = sequencer(day, "run", "--sandbox", "--once")
    assert "(sandbox)" in run
    # one readable line per touch: what, to whom, from which mailbox, in which sequence
    sent = [line for line in run.splitlines() if " sent email " in line]
    assert len(sent) == 5 and all(line.startswith("(sandbox) ") for line in sent), run
    assert any(f"'Pricing for Brightside Health' to Maya Chen <{MAYA}> from sam@outreach-acme.example "
               "(pricing-page, step 1 hello)" in line for line in sent), run
    assert "{" not in run  # no Python dict
    delivered = [message_from_bytes(m.as_bytes(), policy=policy.default) for m in mailbox.Maildir(day / "outbox")]
    assert sorted(str(m["To"]) for m in delivered) == sorted([MAYA, DANA, LEE, MAYA, DANA])
    assert all(m["X-Sequencer-Sandbox"] for m in delivered)

    # --- Maya replies: her sequences stop, and Sam gets a task to answer her ----------------------
    first = next(m for m in delivered if str(m["To"]) == MAYA and str(m["Subject"]).startswith("Pricing"))
    answer = EmailMessage()
    answer["From"], answer["To"] = f"Maya Chen <{MAYA}>", "sam@outreach-acme.example"
    answer["Subject"], answer["Message-ID"] = f"Re: {first['Subject']}", make_msgid(domain="brightside.example")
    answer["In-Reply-To"] = answer["References"] = str(first["Message-ID"])
    answer.set_content("Yes, great timing. Could you send pricing for 40 seats? Thanks, Maya\n")
    (day / "reply.eml").write_bytes(bytes(answer))
    sequencer(day, "inbound", "ingest", "reply.eml")
    reply_task = next(t for t in as_json(day, "tasks", "list") if t["kind"] == "reply")
    assert reply_task["title"].startswith("Reply from Maya Chen (positive): Yes, great timing.")
    assert reply_task["owner"] == "sam.sdr@acme.example"
    shown = as_json(day, "tasks", "show", str(reply_task["id"]))
    assert "Could you send pricing for 40 seats?" in shown["body"] and shown["phone"] == "+49 30 5550 1234"

    # --- a meeting with Dana is booked: both of her sequences stop --------------------------------
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    sequencer(day, "meetings", "book", DANA, "--ae", "alex.ae@acme.example", "--start", start, "--duration", "30")
    states = {(e["prospect"], e["sequence"]): (e["state"], e["rule"]) for e in as_json(day, "enrollments", "list")}
    assert states[(DANA, "webinar-follow-up")] == ("stopped", "builtin.meeting_booked")
    assert states[(DANA, "pricing-page")] == ("stopped", "builtin.meeting_booked")
    assert states[(MAYA, "webinar-follow-up")][0] == states[(MAYA, "pricing-page")][0] == "stopped"
    assert states[(LEE, "webinar-follow-up")][0] == "active"

    # --- a fix reaches Lee's running enrollment: load --upgrade running ---------------------------
    bump = day / "templates" / "steps" / "webinar" / "bump.txt.j2"
    bump.write_text(bump.read_text() + "\nP.S. The recording is up too.\n")
    upgraded = sequencer(day, "sequences", "load", "--upgrade", "running")
    assert "webinar-follow-up v2: new version" in upgraded
    assert f"({LEE}) webinar-follow-up v1 -> v2" in upgraded
    assert as_json(day, "enrollments", "list", "--state", "active")[0]["version"] == 2
