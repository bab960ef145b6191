"""configs/slurm/*.sbatch run locally with two CPU processes: Slurm's variables set by hand,
``srun`` and ``scontrol`` replaced by two-line shims, torchrun and python from this venv."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from polydiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "configs" / "slurm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slurm_env(tmp_path) -> dict[str, str]:
    """The environment of a one-node Slurm job, with ``srun``/``scontrol`` shims on PATH."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (shims / "scontrol").write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && echo 127.0.0.1\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PATH=f"{shims}:{Path(sys.executable).parent}:{env.get('PATH', '')}",
               SLURM_JOB_NODELIST="127.0.0.1", SLURM_NNODES="1", SLURM_JOB_ID="7",
               NPROC="2", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    return env


def _sbatch(script: str, *args, env: dict[str, str], wait: bool = True):
    """Run a template as Slurm would run it on the node (``bash script args``)."""
    cmd = ["bash", str(SLURM / script), *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _tiny_mri_config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "mri" / "tiny_cpu.yaml").read_text())
    cfg["data"]["n"] = 32
    cfg["train"].update(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=1,
                        log_every=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_single_node.sbatch", "train_multi_node.sbatch"])
def test_training_templates_run_two_processes(script, tmp_path, slurm_env):
    out = tmp_path / "ckpt"
    _sbatch(script, "mri", _tiny_mri_config(tmp_path), "-o", out, "--device", "cpu",
            env=slurm_env)
    state = json.loads((out / "train_state" / "state.json").read_text())
    assert state["step"] == 2 and len(state["losses"]) == 2
    from polydiff.apps.mri.model import load_model

    assert load_model(out, "cpu").size == 32  # a checkpoint the app loads


def test_templates_are_valid_bash_and_refuse_missing_arguments(slurm_env):
    for script in sorted(SLURM.glob("*.sbatch")):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
        done = subprocess.run(["bash", str(script)], env=slurm_env, capture_output=True,
                              text=True)
        assert done.returncode != 0 and done.stderr.strip(), script


@pytest.mark.slow
def test_array_template_splits_inputs_between_two_tasks(tmp_path, slurm_env):
    rooms = tmp_path / "rooms"
    assert main(["mono", "scenes", "--n", "3", "-o", str(rooms)]) == 0
    args = ["mono", "estimate", rooms, "--device", "cpu", "--tasks", "depth"]
    assert main([*map(str, args), "-o", str(tmp_path / "one")]) == 0
    env = dict(slurm_env, NPROC="1", SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_TASK_MIN="0")
    tasks = [_sbatch("infer_array.sbatch", *args, "-o", tmp_path / "array", "--resume",
                     env=dict(env, SLURM_ARRAY_TASK_ID=str(i)), wait=False) for i in (0, 1)]
    outputs = [task.communicate(timeout=900) for task in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outputs
    assert "[share 1 of 2: 2 input(s)]" in outputs[0][0]
    assert "[share 2 of 2: 1 input(s)]" in outputs[1][0]
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "array").iterdir()) and len(one) == 18
    for name in one:
        if not name.endswith(".json"):
            assert (tmp_path / "one" / name).read_bytes() == \
                (tmp_path / "array" / name).read_bytes(), name
