"""Where a job starts: from its newest retained checkpoint or savepoint, by itself, or fresh when told to.

Flink restores state only from a snapshot someone names (``execution.state-recovery.path``); a job started again
with the same command would otherwise begin empty at its group's committed offsets, which are past every pending
reminder and deferred email. So each job's entry script looks in its own checkpoint and savepoint folders
(``execution.checkpointing.dir`` and ``execution.checkpointing.savepoint-dir``, one pair per job) and resumes from
the newest completed snapshot. It refuses to rewind (``--from-timestamp``) over such state unless started with
``--fresh``, which sets the old state aside (moved, not deleted) so a crash before the first new checkpoint cannot
bring it back. A folder with only unfinished checkpoints (killed before the first completed) holds nothing to
resume: such a job starts at its group's committed offsets, which only completed checkpoints move.

Checkpoints are restored in CLAIM mode (Flink deletes them once newer ones exist, so disk stays bounded across
restarts); savepoints in NO_CLAIM mode (they stay the user's).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

__all__ = [
    "CHECKPOINT_DIR",
    "RECOVERY_PATH",
    "SAVEPOINT_DIR",
    "RecoveryRefused",
    "Snapshot",
    "StartPlan",
    "StoredState",
    "find_state",
    "plan_start",
    "set_aside",
]

CHECKPOINT_DIR = "execution.checkpointing.dir"
SAVEPOINT_DIR = "execution.checkpointing.savepoint-dir"
RECOVERY_PATH = "execution.state-recovery.path"
CLAIM_MODE = "execution.state-recovery.claim-mode"

SnapshotKind = Literal["checkpoint", "savepoint"]


class RecoveryRefused(SystemExit):
    """The job will not start: it found state it must not silently drop. The message says what to do."""


@dataclass(frozen=True)
class Snapshot:
    """A completed checkpoint or savepoint: a folder holding ``_metadata``."""

    path: Path
    kind: SnapshotKind
    completed_at: float  # the _metadata file's modification time, seconds since the epoch

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


@dataclass(frozen=True)
class StoredState:
    """What a job's checkpoint and savepoint folders hold."""

    snapshots: list[Snapshot] = field(default_factory=list)
    #: folders with state of an earlier run but no completed snapshot (a crash before the first checkpoint
    #: finished leaves these, and so does a checkpoint deleted by hand)
    unfinished: list[Path] = field(default_factory=list)
    #: the folders looked in that exist
    roots: list[Path] = field(default_factory=list)

    @property
    def newest(self) -> Snapshot | None:
        return max(self.snapshots, key=lambda s: s.completed_at, default=None)

    @property
    def empty(self) -> bool:
        return not self.snapshots and not self.unfinished


@dataclass(frozen=True)
class StartPlan:
    """What :func:`plan_start` decided: Flink options to add, and a line for the job's log."""

    options: dict[str, str]
    message: str
    set_aside: list[Path] = field(default_factory=list)


def local_path(uri_or_path: str) -> Path | None:
    """A ``file://`` URI or plain path as a Path; None for other file systems (s3://, hdfs://...)."""
    parsed = urlparse(uri_or_path)
    if parsed.scheme in ("", "file"):
        return Path(url2pathname(parsed.path) if parsed.scheme else uri_or_path)
    if len(parsed.scheme) == 1:  # a Windows drive letter
        return Path(uri_or_path)
    return None


def find_state(checkpoint_dir: str, savepoint_dir: str | None) -> StoredState:
    """Completed checkpoints (``<dir>/<job-id>/chk-<n>/_metadata``) and savepoints (``<dir>/savepoint-*/_metadata``).

    :raises RecoveryRefused: for a folder on a file system other than the local one, which the job's launcher
        cannot list; name the snapshot in ``execution.state-recovery.path`` (or pass ``--fresh``) there.
    """
    snapshots: list[Snapshot] = []
    unfinished: list[Path] = []
    roots: list[Path] = []
    for uri, kind in ((checkpoint_dir, "checkpoint"), (savepoint_dir, "savepoint")):
        if not uri:
            continue
        root = local_path(uri)
        if root is None:
            raise RecoveryRefused(
                f"cannot look for earlier state in {uri}: only local folders are searched. Set "
                f"flink.{RECOVERY_PATH} to the snapshot to resume from, or pass --fresh to start empty."
            )
        if not root.is_dir():
            continue
        roots.append(root)
        found = _checkpoints(root) if kind == "checkpoint" else _savepoints(root)
        snapshots += found
        if kind == "checkpoint" and not found:
            unfinished += [d for d in root.iterdir() if d.is_dir() and any(d.glob("chk-*"))]
    return StoredState(snapshots=snapshots, unfinished=unfinished, roots=roots)


def _checkpoints(root: Path) -> list[Snapshot]:
    return [_snapshot(m.parent, "checkpoint") for m in root.glob("*/chk-*/_metadata")]


def _savepoints(root: Path) -> list[Snapshot]:
    return [_snapshot(m.parent, "savepoint") for m in root.glob("savepoint-*/_metadata")]


def _snapshot(folder: Path, kind: SnapshotKind) -> Snapshot:
    return Snapshot(path=folder, kind=kind, completed_at=(folder / "_metadata").stat().st_mtime)


def plan_start(options: Mapping[str, str], state: StoredState, *, fresh: bool, rewind: bool) -> StartPlan:
    """Resume from the newest snapshot, start empty, or refuse; pure, so every case is unit-tested.

    :param options: the job's Flink options; a ``execution.state-recovery.path`` there is the user's choice and wins.
    :param fresh: ``--fresh``: start empty, setting any stored state aside.
    :param rewind: the command asks to read from a given time (``--from-timestamp``), which state would override.
    """
    named = options.get(RECOVERY_PATH)
    if named:
        return StartPlan({}, f"resuming from {named} (named in the config's flink.{RECOVERY_PATH})")
    if fresh:
        where = ", ".join(str(r) for r in state.roots)
        message = "starting fresh (--fresh)" + (f"; earlier state in {where} set aside" if not state.empty else "")
        return StartPlan({}, message, set_aside=[] if state.empty else list(state.roots))
    newest = state.newest
    if newest is None and not state.unfinished:
        return StartPlan({}, "no earlier state found: starting fresh")
    if newest is None:
        # Killed before its first checkpoint completed: nothing was kept, and no offset was committed either
        # (the source commits on completed checkpoints), so starting at the committed offsets loses nothing.
        return StartPlan(
            {}, f"no completed checkpoint in {', '.join(map(str, state.unfinished))}: starting at the committed offsets"
        )
    if rewind:
        raise RecoveryRefused(
            "--from-timestamp asks to read again from a given time, but this job has state of an earlier run in "
            f"{', '.join(str(r) for r in state.roots)}; resuming would ignore the timestamp. Pass --fresh as well to "
            "set that state aside and start over."
        )
    claim = "CLAIM" if newest.kind == "checkpoint" else "NO_CLAIM"
    age = max(0.0, time.time() - newest.completed_at)
    return StartPlan(
        {RECOVERY_PATH: newest.uri, CLAIM_MODE: claim},
        f"resuming from {newest.kind} {newest.path} (completed {age:.0f} s ago)",
    )


def set_aside(roots: Iterable[Path]) -> list[Path]:
    """Move each folder to ``<folder>.set-aside-<UTC time>``; returns where they went."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = []
    for root in roots:
        target = root.with_name(f"{root.name}.set-aside-{stamp}")
        shutil.move(str(root), str(target))
        moved.append(target)
    return moved
