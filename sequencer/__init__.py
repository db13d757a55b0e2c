"""sequencer: a signal-triggered outbound sequencing and appointment-setting engine."""

__version__ = "0.1.0"
