"""Meetings, from booked to held: the record a program is judged on.

``booking`` is the lifecycle (book, reschedule, cancel, held, no-show, accept, reject) and
the one writer of ``Meeting.state``; ``reminders`` emails the prospect before the meeting;
``acceptance`` is the AE's accept-or-reject loop against the team's qualification file;
``metrics`` turns the records into the numbers the reports show.
"""
