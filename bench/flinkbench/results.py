"""Result files: where they go, what every one of them records (git SHA, machine), and small statistics."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "git_sha", "machine", "median", "percentile", "write_result"]

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
_GIT_TIMEOUT_S = 10


def git_sha() -> str:
    """Short SHA of HEAD, with ``-dirty`` when tracked files differ from it (results then include the diff)."""
    root = Path(__file__).resolve().parent
    try:
        head = subprocess.run(  # noqa: S603 - fixed argv
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            check=False,
            timeout=_GIT_TIMEOUT_S,
            cwd=root,
        )
        dirty = subprocess.run(  # noqa: S603 - fixed argv
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
            timeout=_GIT_TIMEOUT_S,
            cwd=root,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers depend on: cores (``nproc``), and how busy the machine was when the run started."""
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(kind: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` as ``<kind>-<UTC time>.json``; the load average at the end is added here."""
    payload["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-1) of ``values``; no interpolation, so it is a value that occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]
