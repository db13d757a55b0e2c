"""Deliverability: what our sending looks like from outside, and stopping a mailbox or domain in time.

``counts`` (sends, bounces, complaints per mailbox over a period, in SQL), ``protection``
(the thresholds, the verdict per mailbox and domain, pausing and resuming), ``dmarc``
(aggregate reports from the domain's ``rua`` mailbox: parse safely, store per source IP).
"""
