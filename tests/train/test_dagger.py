from dataclasses import replace

import numpy as np
import pytest
import torch

from tt_deploy.errors import InputError
from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, load_bfm
from tt_deploy.spec import ACTION_DIM
from tt_deploy.train.dagger import Buffer, DaggerConfig, DaggerTrainer, dagger
from tt_deploy.train.pretrain_task import MODES

TINY = DaggerConfig(num_envs=6, rounds=1, steps_per_round=4, buffer_size=64, updates_per_round=2, batch_size=8, nthread=1)


def test_buffer_is_a_fifo_ring():
    buf = Buffer(5)
    buf.add({"x": torch.arange(3.0)[:, None]})
    buf.add({"x": torch.arange(3.0, 7.0)[:, None]})  # 7 rows into 5 slots: 0 and 1 are overwritten
    assert buf.size == 5 and sorted(buf.data["x"][:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    batch = buf.sample(100, torch.Generator().manual_seed(0))
    assert set(batch["x"][:, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}


def test_beta_decays_to_its_floor():
    cfg = replace(TINY, beta=(0.5, 0.5, 0.1))
    assert [cfg.beta_at(k) for k in range(4)] == [0.5, 0.25, 0.125, 0.1]


def test_labels_are_the_controller_in_walk_prompts_and_the_starting_bfm_elsewhere(tmp_path):
    trainer = DaggerTrainer(replace(TINY, curriculum=replace(TINY.curriculum, mode_probs=(1, 1, 1))),
                            DEFAULT_BFM_PATH, tmp_path)  # fmt: skip
    trainer.collect()
    data = {k: v[: trainer.buffer.size] for k, v in trainer.buffer.data.items()}
    assert trainer.buffer.size == 6 * 4
    with torch.no_grad():  # student == anchor before any update: non-walk labels are its own mean action
        mean = trainer.student.bfm({k: v for k, v in data.items() if k != "label"})
    last = slice(18, 24)  # the last step's rows, in env order; the task's modes are still those of that step
    walk = trainer.task.mode == MODES.index("walk")
    assert walk.any() and (~walk).any()
    label, m = data["label"][last], mean[last]
    torch.testing.assert_close(label[~walk], m[~walk].clamp(-1, 1), atol=1e-5, rtol=0)
    assert (label[walk] - m[walk]).abs().max() > 1e-3  # the controller's actions, not the BFM's
    assert label.shape == (6, ACTION_DIM)


def test_dagger_trains_the_student_only_and_resumes(tmp_path):
    dagger(TINY, DEFAULT_BFM_PATH, tmp_path)
    bfm, info = load_bfm(tmp_path / "checkpoints" / "last.safetensors")
    assert info["recipe"].endswith(" + walk DAgger v1") and info["iterations"] == 1 and info["env_steps"] == 24
    assert info["init_env_steps"] > 0  # the starting BFM's cost carries over into the model card
    base, _ = load_bfm(DEFAULT_BFM_PATH)
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in bfm.state_dict().items())
    dagger(replace(TINY, rounds=2), DEFAULT_BFM_PATH, tmp_path, resume=True)
    _, info = load_bfm(tmp_path / "checkpoints" / "last.safetensors")
    assert info["iterations"] == 2 and info["env_steps"] == 48
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and "own_walk_falls_per_10s" in rows[0]


def test_dagger_needs_an_existing_bfm(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        dagger(TINY, tmp_path / "missing.safetensors", tmp_path)


def test_normalisers_are_frozen_in_dagger(tmp_path):
    trainer = DaggerTrainer(TINY, DEFAULT_BFM_PATH, tmp_path)
    before = {k: v.clone() for k, v in trainer.student.bfm.state_dict().items()}
    trainer.collect()
    trainer.train()
    after = trainer.student.bfm.state_dict()
    stats = [k for k in before if "mean" in k or "var" in k or "count" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in stats)
    assert np.isfinite(trainer.train()["train_loss"])
