"""Shared pieces of the Flink job benchmarks (``bench/flink_throughput.py``, ``bench/profile_latency.py``).

Kept apart from the production packages: the benchmarks drive the real job scripts as subprocesses with
a temporary config, exactly as ``make run`` does, and only read what the jobs wrote.
"""
