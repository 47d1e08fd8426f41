"""Where a job starts: the newest completed snapshot, fresh when there is none, refused over state it cannot use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs.recovery import RECOVERY_PATH, RecoveryRefused, find_state, plan_start, set_aside


def _checkpoint(root: Path, job_id: str, number: int, mtime: float, complete: bool = True) -> Path:
    folder = root / job_id / f"chk-{number}"
    folder.mkdir(parents=True)
    if complete:
        (folder / "_metadata").write_bytes(b"m")
        os.utime(folder / "_metadata", (mtime, mtime))
    return folder


def _savepoint(root: Path, name: str, mtime: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "_metadata").write_bytes(b"m")
    os.utime(folder / "_metadata", (mtime, mtime))
    return folder


def test_no_state_starts_fresh(tmp_path):
    plan = plan_start({}, find_state((tmp_path / "chk").as_uri(), None), fresh=False, rewind=False)
    assert plan.options == {} and "starting fresh" in plan.message


def test_resumes_from_the_newest_snapshot_across_runs_and_savepoints(tmp_path):
    checkpoints, savepoints = tmp_path / "chk", tmp_path / "sp"
    _checkpoint(checkpoints, "a" * 32, 7, mtime=1_000)
    newest = _checkpoint(checkpoints, "b" * 32, 9, mtime=3_000)
    _checkpoint(checkpoints, "b" * 32, 10, mtime=4_000, complete=False)  # being written when the job died
    _savepoint(savepoints, "savepoint-aaaaaa-1", mtime=2_000)
    plan = plan_start({}, find_state(checkpoints.as_uri(), str(savepoints)), fresh=False, rewind=False)
    assert plan.options == {RECOVERY_PATH: newest.resolve().as_uri(), "execution.state-recovery.claim-mode": "CLAIM"}


def test_a_newer_savepoint_is_restored_without_claiming_it(tmp_path):
    checkpoints, savepoints = tmp_path / "chk", tmp_path / "sp"
    _checkpoint(checkpoints, "a" * 32, 3, mtime=1_000)
    savepoint = _savepoint(savepoints, "savepoint-aaaaaa-2", mtime=5_000)
    plan = plan_start({}, find_state(str(checkpoints), str(savepoints)), fresh=False, rewind=False)
    assert plan.options[RECOVERY_PATH] == savepoint.resolve().as_uri()
    assert plan.options["execution.state-recovery.claim-mode"] == "NO_CLAIM"


def test_a_snapshot_named_in_the_config_wins(tmp_path):
    _checkpoint(tmp_path / "chk", "a" * 32, 3, mtime=1_000)
    plan = plan_start(
        {RECOVERY_PATH: "file:///elsewhere/chk-1"}, find_state(str(tmp_path / "chk"), None), fresh=False, rewind=False
    )
    assert plan.options == {} and "file:///elsewhere/chk-1" in plan.message


def test_a_job_killed_before_its_first_checkpoint_completed_starts_at_its_committed_offsets(tmp_path):
    checkpoints = tmp_path / "chk"
    _checkpoint(checkpoints, "a" * 32, 1, mtime=1_000, complete=False)
    state = find_state(str(checkpoints), None)
    plan = plan_start({}, state, fresh=False, rewind=False)
    assert plan.options == {} and "committed offsets" in plan.message
    assert plan_start({}, state, fresh=True, rewind=False).set_aside == [checkpoints]


def test_rewinding_over_state_is_refused_unless_fresh(tmp_path):
    _checkpoint(tmp_path / "chk", "a" * 32, 3, mtime=1_000)
    state = find_state(str(tmp_path / "chk"), None)
    with pytest.raises(RecoveryRefused, match="--from-timestamp"):
        plan_start({}, state, fresh=False, rewind=True)
    assert plan_start({}, state, fresh=True, rewind=True).set_aside == [tmp_path / "chk"]


def test_fresh_sets_old_state_aside_so_a_crash_cannot_bring_it_back(tmp_path):
    checkpoints = tmp_path / "chk"
    _checkpoint(checkpoints, "a" * 32, 3, mtime=1_000)
    plan = plan_start({}, find_state(str(checkpoints), None), fresh=True, rewind=False)
    (moved,) = set_aside(plan.set_aside)
    assert not checkpoints.exists() and (moved / ("a" * 32) / "chk-3" / "_metadata").is_file()
    assert find_state(str(checkpoints), None).empty


def test_state_on_a_remote_file_system_must_be_named(tmp_path):
    with pytest.raises(RecoveryRefused, match=RECOVERY_PATH):
        find_state("s3://bucket/checkpoints/cart", None)
