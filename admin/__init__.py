"""Operator commands for the delivery stage: ``python -m admin …`` (suppression list, A/B report)."""
