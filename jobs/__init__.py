"""Flink job entry scripts (one per job) and the config schema they share."""
