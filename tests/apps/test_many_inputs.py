"""Many inputs in the contract: the split between processes, --resume, files per input."""

from pathlib import Path

import pytest

from polydiff.apps.contract import PerInput, my_share, shard_of
from polydiff.runtime import UserError

ENV = ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
       "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")


@pytest.fixture(autouse=True)
def _plain_run(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def _shares(monkeypatch, items, **env) -> list[list[int]]:
    """my_share in every process of a launch described by lists of env values."""
    keys = list(env)
    got = []
    for values in zip(*env.values()):
        for key, value in zip(keys, values):
            monkeypatch.setenv(key, str(value))
        got.append(my_share(items))
    return got


def test_a_plain_run_takes_everything():
    assert shard_of() == (0, 1) and my_share([3, 1, 2]) == [3, 1, 2]


def test_torchrun_ranks_partition_the_inputs(monkeypatch):
    items = list(range(10))
    shares = _shares(monkeypatch, items, RANK=[0, 1, 2], WORLD_SIZE=[3, 3, 3])
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_array_tasks_times_ranks_partition_the_inputs(monkeypatch):
    items = list(range(23))
    # an array 4-10:3 (ids 4, 7, 10) of torchrun launches with 2 processes each
    ids = [4, 4, 7, 7, 10, 10]
    shares = _shares(monkeypatch, items, SLURM_ARRAY_TASK_ID=ids,
                     SLURM_ARRAY_TASK_MIN=[4] * 6, SLURM_ARRAY_TASK_STEP=[3] * 6,
                     SLURM_ARRAY_TASK_COUNT=[3] * 6, RANK=[0, 1] * 3, WORLD_SIZE=[2] * 6)
    flat = sorted(i for share in shares for i in share)
    assert flat == items  # each input once
    assert shares[3] == items[3::6]  # task 7 (the second), rank 1


def test_an_inconsistent_launch_is_a_user_error(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="not a valid share"):
        shard_of()


def _batch(tmp_path, names, **kw) -> PerInput:
    return PerInput(names, lambda n: [tmp_path / f"{n}.a", tmp_path / f"{n}.b"], **kw)


def _run(batch: PerInput, fail_at: str | None = None) -> None:
    for name in batch.todo:
        with batch.outputs(name) as (a, b):
            a.write_text(name)
            if name == fail_at:
                raise RuntimeError("boom")
            b.write_text(name.upper())


def test_each_input_appears_when_done_and_a_failure_keeps_the_finished(tmp_path):
    batch = _batch(tmp_path, ["x", "y", "z"])
    with pytest.raises(RuntimeError):
        _run(batch, fail_at="y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.a", "x.b"]  # no temp, no y.a
    assert batch.written == [tmp_path / "x.a", tmp_path / "x.b"]


def test_resume_skips_finished_inputs_and_redoes_nothing(tmp_path):
    _run(_batch(tmp_path, ["x"]))
    (tmp_path / "x.b").write_text("kept")
    with pytest.raises(UserError, match="already exists"):  # checked before any work
        _batch(tmp_path, ["x", "y"])
    batch = _batch(tmp_path, ["x", "y"], resume=True)
    assert batch.todo == ["y"] and batch.skipped == ["x"]
    _run(batch)
    assert (tmp_path / "x.b").read_text() == "kept" and (tmp_path / "y.b").read_text() == "Y"
    assert "skipped 1 input" in batch.summary()


def test_a_partial_input_is_redone_only_with_overwrite(tmp_path):
    (tmp_path / "x.a").write_text("old")
    with pytest.raises(UserError, match="already exists"):
        _batch(tmp_path, ["x"], resume=True)
    batch = _batch(tmp_path, ["x"], resume=True, overwrite=True)
    _run(batch)
    assert (tmp_path / "x.a").read_text() == "x"


def test_outputs_that_are_inputs_or_shared_are_refused(tmp_path):
    src = tmp_path / "x.a"
    src.write_text("input")
    with pytest.raises(UserError, match="also an input"):
        _batch(tmp_path, ["x"], inputs=[src], overwrite=True)
    with pytest.raises(UserError, match="both be"):
        PerInput(["x", "y"], lambda n: [tmp_path / "same.txt"])


def test_other_ranks_write_their_own_share(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    batch = _batch(tmp_path, ["w", "x", "y", "z"])
    _run(batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.a", "x.b", "z.a", "z.b"]
    assert batch.summary().startswith("[share 2 of 2: 2 input(s)]")
    assert Path(batch.written[0]).read_text() == "x"
