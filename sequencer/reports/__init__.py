"""Reports managers look at: deliverability (per mailbox and sending domain) and the pipeline
(speed to lead, touches, replies, A/B, meetings, cost), as one document each.

``period`` (the time range and filters, checked), ``sql`` (the dialect-specific pieces of the
aggregations), ``deliverability`` and ``pipeline`` (build the document: SQL GROUP BYs, never
a Python loop over touches), ``formats`` (table, JSON, CSV) and ``page`` (the self-contained
HTML page with charts). The CLI (``sequencer report``) and the API (``/reports/...``) are shells.
"""

SCHEMA_VERSION = 1
