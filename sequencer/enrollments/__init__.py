"""Enrollments: one prospect in one sequence, and every change of its state (``lifecycle``)."""
