"""CPU seconds and peak memory of a process and everything it started, read from /proc while it runs.

A Flink job run here is a Python process, the JVM it launches (MiniCluster, thread-mode Python inside it) and,
in process mode, Python workers: ``getrusage`` sees only children that were waited for, so the benchmark polls
``/proc`` for every process of the run's session instead.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SessionUsage", "Usage"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) of every process seen, and the largest resident memory of them together."""

    cpu_seconds: float
    peak_rss_mb: float


class SessionUsage(threading.Thread):
    """Polls the processes of session ``sid`` (a process started with ``start_new_session=True`` has ``sid ==
    pid``) until :meth:`stop`; a process's CPU time is its last reading, so one that exits still counts."""

    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True, name=f"usage-{sid}")
        self.sid = sid
        self._cpu: dict[int, float] = {}
        self._peak_rss = 0
        self._stop_requested = threading.Event()

    def run(self) -> None:
        while not self._stop_requested.wait(POLL_INTERVAL_S):
            self._sample()

    def stop(self) -> Usage:
        self._stop_requested.set()
        self.join(timeout=5)
        return Usage(round(sum(self._cpu.values()), 2), round(self._peak_rss / 2**20, 1))

    def _sample(self) -> None:
        rss = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # after the command: state ppid pgrp session ... utime(12) stime(13) ... rss(22), 0-based from state
            if int(fields[3]) != self.sid:
                continue
            self._cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
            rss += int(fields[21]) * _PAGE
        self._peak_rss = max(self._peak_rss, rss)
