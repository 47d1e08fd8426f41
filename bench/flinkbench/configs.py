"""Named sets of Flink options the benchmarks compare, layered on a job's shipped ``flink:`` section.

Both benchmarks take the same names, so the latency gained and the throughput paid are measured for exactly
the same options. The keys are Flink 2.2's, checked in the wheel's jars (``PythonOptions``,
``ExecutionOptions``, ``PipelineOptions``):

- ``python.fn-execution.bundle.time`` (default 1000 ms): how long a process-mode Python operator may buffer
  records before it hands the bundle to the Python worker. A record can wait this long at each Python stage.
- ``python.fn-execution.bundle.size`` (default 1000): the other bundle bound, in records.
- ``execution.buffer-timeout.interval`` (default 100 ms): how long a network buffer may wait to fill up
  before it is flushed to the next task.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["FLINK_CONFIGS", "flink_options"]

FLINK_CONFIGS: dict[str, dict[str, str]] = {
    # What flink-conf/jobs/*.yaml ship, unchanged. Since 2026-11-30 the cart job ships "low-latency" and the
    # intent job "balanced"; results from before that date call Flink's defaults "shipped".
    "shipped": {},
    # Flink's own defaults, what the jobs shipped before: bundles of up to 1000 ms or 1000 records, network
    # buffers flushed after 100 ms.
    "flink-defaults": {
        "python.fn-execution.bundle.time": "1000",
        "python.fn-execution.bundle.size": "1000",
        "execution.buffer-timeout.interval": "100ms",
    },
    # Bundles closed after 10 ms or 100 records, network buffers flushed after 5 ms.
    "low-latency": {
        "python.fn-execution.bundle.time": "10",
        "python.fn-execution.bundle.size": "100",
        "execution.buffer-timeout.interval": "5ms",
    },
    # In between: bundles closed after 50 ms (still well inside the 200 ms promise) but as large as the default
    # allows, network buffers flushed after 10 ms; for jobs that pay for small bundles (the intent job's windows).
    "balanced": {
        "python.fn-execution.bundle.time": "50",
        "execution.buffer-timeout.interval": "10ms",
    },
    # Explored and rejected: bundles closed after 1 ms or 10 records, network buffers after 1 ms. The cart job
    # then needed 58 s for 2,090 events (shipped: 34 s) and did not finish 30,020 events within 420 s.
    "bundle-1ms": {
        "python.fn-execution.bundle.time": "1",
        "python.fn-execution.bundle.size": "10",
        "execution.buffer-timeout.interval": "1ms",
    },
    # Not a tuning: cProfile in every process-mode Python worker, printed into the job's log every bundle
    # (``python.profile.enabled``). Use with ``--keep-logs``; the numbers it produces are slower than real.
    "profile": {"python.profile.enabled": "true"},
}


def flink_options(config: str, mode: str) -> Mapping[str, str]:
    """The options a run adds to the shipped ``flink:`` section: the named set plus the execution mode."""
    return {**FLINK_CONFIGS[config], "python.execution-mode": mode}
