"""Who must never be contacted: suppression lists, imports, unsubscribe tokens.

Import from the modules themselves (``suppression.store``, ``suppression.normalize``,
``suppression.tokens``, ``suppression.csv_io``, ``suppression.models``); this package
re-exports nothing. It imports nothing from ``sequencer``: the engine depends on it,
never the other way round.
"""
