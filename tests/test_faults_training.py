"""A kill while a checkpoint is being written: the rerun resumes from the last complete checkpoint (or
starts afresh when there is none) instead of failing on the half-written one forever."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backends.st_train import _last_checkpoint


def checkpoint(folder: Path, step: int, *, complete: bool = True, state: str = '{"global_step": 0}') -> Path:
    """A checkpoint folder as transformers writes it; an incomplete one holds what comes first (config, weights)."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "optimizer.pt").write_bytes(b"optimizer")
        (path / "trainer_state.json").write_text(state)
    return path


def test_an_incomplete_newest_checkpoint_is_skipped_for_the_complete_one_before(tmp_path, caplog):
    older = checkpoint(tmp_path, 2)
    checkpoint(tmp_path, 4, complete=False)
    with caplog.at_level(logging.WARNING, logger="backends.st_train"):
        assert _last_checkpoint(tmp_path) == str(older)
    assert "skipping the incomplete checkpoint" in caplog.text and "checkpoint-4" in caplog.text and "optimizer.pt" in caplog.text


def test_a_lone_incomplete_checkpoint_means_starting_afresh(tmp_path):
    checkpoint(tmp_path, 2, complete=False)  # one epoch: the only checkpoint, killed while written
    assert _last_checkpoint(tmp_path) is None
    assert _last_checkpoint(tmp_path / "missing") is None


def test_a_half_written_trainer_state_does_not_count(tmp_path):
    older = checkpoint(tmp_path, 9)  # numeric order, not text order: 9 < 10
    checkpoint(tmp_path, 10, state='{"global_st')
    (tmp_path / "checkpoint-final").mkdir()
    assert _last_checkpoint(tmp_path) == str(older)
    newest = checkpoint(tmp_path, 12)
    assert _last_checkpoint(tmp_path) == str(newest)


KILLER = """
import os, signal, sys
from pathlib import Path
from transformers import Trainer
from backends.st_train import train
from harness.data.goldset import load_goldset
from harness.data.pair_files import goldset_pairs
from harness.training.schema import TrainConfig

model, goldset, out, epochs, kill_at = sys.argv[1:]
saves = 0
write_optimizer = Trainer._save_optimizer_and_scheduler


def save_then_die(self, output_dir):  # the weights are on disk; the optimizer and trainer state never will be
    global saves
    saves += 1
    if saves == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    write_optimizer(self, output_dir)


Trainer._save_optimizer_and_scheduler = save_then_die
config = TrainConfig(base_model=model, goldset=goldset, eval_split=None, epochs=int(epochs), batch_size=2)
train(config, {"tiny/train": goldset_pairs(load_goldset(goldset), "train") * 2}, start_model=Path(model), out_dir=Path(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("epochs", "kill_at", "resumed_steps"), [(1, 1, 2), (2, 2, 2)])
def test_sigkill_while_a_checkpoint_is_written_then_rerun_finishes(tmp_path, tiny_model, tiny_goldset, epochs, kill_at, resumed_steps):
    from transformers import TrainerCallback

    from backends.st_train import train
    from harness.data.goldset import load_goldset
    from harness.data.pair_files import goldset_pairs
    from harness.training.schema import TrainConfig

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-c", KILLER, str(tiny_model), str(tiny_goldset), str(tmp_path / "job"), str(epochs), str(kill_at)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    half = tmp_path / "job" / "checkpoints" / f"checkpoint-{2 * epochs}"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            CountSteps.steps += 1

    config = TrainConfig(base_model=str(tiny_model), goldset=str(tiny_goldset), eval_split=None, epochs=epochs, batch_size=2)
    data = {"tiny/train": goldset_pairs(load_goldset(tiny_goldset), "train") * 2}
    result = train(config, data, start_model=tiny_model, out_dir=tmp_path / "job", callbacks=[CountSteps()])
    assert result.steps == 2 * epochs and (result.model_dir / "model.safetensors").is_file()
    assert CountSteps.steps == resumed_steps  # one epoch: trained afresh; two: resumed after the complete first epoch
    assert json.loads((half / "trainer_state.json").read_text())["global_step"] == 2 * epochs  # rewritten whole
