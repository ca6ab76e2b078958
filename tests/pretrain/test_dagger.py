import json
import shutil
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.models.checkpoints import DEFAULT_BFM_PATH, load_bfm, save_bfm
from tt_deploy.pretrain.dagger import Buffer, DaggerConfig, DaggerTrainer, dagger
from tt_deploy.pretrain.gait_teacher import GaitParams, teacher_joint_ids
from tt_deploy.pretrain.model_card import _panels
from tt_deploy.pretrain.prompt_task import MODES
from tt_deploy.rl.runner import to_torch
from tt_deploy.spec import ACTION_DIM

TINY = DaggerConfig(num_envs=6, rounds=1, steps_per_round=4, buffer_size=64, updates_per_round=2, batch_size=8, nthread=1)
MIXED = replace(TINY, curriculum=replace(TINY.curriculum, mode_probs=(1, 1, 1)))


def test_buffer_is_a_fifo_ring():
    buf = Buffer(5)
    buf.add({"x": torch.arange(3.0)[:, None]})
    batch = buf.sample(100, torch.Generator().manual_seed(0))  # partly filled: only rows that were added
    assert set(batch["x"][:, 0].tolist()) == {0.0, 1.0, 2.0}
    buf.add({"x": torch.arange(3.0, 7.0)[:, None]})  # 7 rows into 5 slots: 0 and 1 are overwritten
    assert buf.size == 5 and sorted(buf.data["x"][:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_beta_decays_to_its_floor():
    cfg = replace(TINY, beta=(0.5, 0.5, 0.1))
    assert [cfg.beta_at(k) for k in range(4)] == [0.5, 0.25, 0.125, 0.1]


@pytest.mark.parametrize("bad", [{"rounds": 0}, {"num_envs": 0}, {"buffer_size": 3}, {"beta": (1.5, 0.9, 0.0)},
                                 {"beta": (0.5, 0.0, 0.0)}, {"keep_every": -1},
                                 {"friction": (2.0, 0.5)}])  # fmt: skip
def test_config_rejects_bad_values(bad):
    with pytest.raises(InputError, match="DAgger"):
        replace(TINY, **bad)


def test_labels_are_the_controllers_row_in_walk_prompts_and_the_starting_bfm_elsewhere(tmp_path):
    trainer = DaggerTrainer(replace(MIXED, steps_per_round=1), DEFAULT_BFM_PATH, tmp_path)
    trainer._obs = obs = to_torch(trainer.env.reset())
    walk = trainer.task.mode == MODES.index("walk")
    assert walk.any() and (~walk).any()
    trainer.collect()
    label = trainer.buffer.data["label"][: trainer.buffer.size]
    assert label.shape == (6, ACTION_DIM)
    torch.testing.assert_close(label[walk], obs["teacher_action"][walk].float(), atol=0, rtol=0)
    others = np.setdiff1d(np.arange(ACTION_DIM), teacher_joint_ids())
    assert torch.all(label[walk][:, others] == 0)  # rest pose on the joints the controller leaves alone
    assert label[walk][:, teacher_joint_ids()].abs().max() > 1e-3
    with torch.no_grad():  # student == anchor before any update
        anchor = trainer.anchor.action_mean(obs).clamp(-1, 1)
    torch.testing.assert_close(label[~walk], anchor[~walk], atol=0, rtol=0)


def test_training_moves_the_student_and_never_the_anchor_or_the_normalisers(tmp_path):
    trainer = DaggerTrainer(TINY, DEFAULT_BFM_PATH, tmp_path)
    anchor = {k: v.clone() for k, v in trainer.anchor.state_dict().items()}
    before = {k: v.clone() for k, v in trainer.student.bfm.state_dict().items()}
    trainer.collect()
    assert np.isfinite(trainer.train()["train_loss"])
    assert all(torch.equal(v, trainer.anchor.state_dict()[k]) for k, v in anchor.items())
    after = trainer.student.bfm.state_dict()
    stats = [k for k in before if k.endswith((".mean", ".var", ".count"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in stats)


def test_dagger_checkpoints_every_round_and_resumes(tmp_path):
    dagger(TINY, DEFAULT_BFM_PATH, tmp_path)
    bfm, info = load_bfm(tmp_path / "checkpoints" / "last.safetensors")
    assert info["recipe"].endswith(" + walk DAgger v1") and info["iterations"] == 1 and info["env_steps"] == 24
    assert info["init_env_steps"] > 0  # the starting BFM's cost carries over into the model card
    # provenance: the controller tuning behind the walk labels (JSON turns tuples into lists)
    assert info["gait_params"] == json.loads(json.dumps(asdict(GaitParams())))
    base, _ = load_bfm(DEFAULT_BFM_PATH)
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in bfm.state_dict().items())
    dagger(replace(TINY, rounds=2, keep_every=2), DEFAULT_BFM_PATH, tmp_path, resume=True)
    _, info = load_bfm(tmp_path / "checkpoints" / "last.safetensors")
    assert info["iterations"] == 2 and info["env_steps"] == 48
    assert [p.name for p in (tmp_path / "checkpoints").glob("round_*")] == ["round_0002.safetensors"]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and all(c in header for c, _ in _panels(header))  # the model card can plot it


def test_resume_refuses_another_anchor(tmp_path):
    dagger(TINY, DEFAULT_BFM_PATH, tmp_path / "run")
    other = tmp_path / "other.safetensors"
    bfm, info = load_bfm(DEFAULT_BFM_PATH)
    with torch.no_grad():
        bfm.decoder[-1].bias.add_(0.01)
    save_bfm(bfm, other, info=info)
    with pytest.raises(InputError, match="pass the run's own --init-bfm"):
        dagger(replace(TINY, rounds=2), other, tmp_path / "run", resume=True)
    shutil.copy(DEFAULT_BFM_PATH, tmp_path / "same.safetensors")  # same bytes, other path: fine
    dagger(replace(TINY, rounds=2), tmp_path / "same.safetensors", tmp_path / "run", resume=True)


def test_dagger_needs_an_existing_bfm(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        dagger(TINY, tmp_path / "missing.safetensors", tmp_path)


def _perturbed_bfm(path):
    bfm, info = load_bfm(DEFAULT_BFM_PATH)
    with torch.no_grad():
        bfm.decoder[-1].bias.add_(0.05)
    save_bfm(bfm, path, info=info)
    return path


def test_idle_prompts_take_the_idle_bfms_labels_and_resume_checks_it(tmp_path):
    idle_bfm = _perturbed_bfm(tmp_path / "idle.safetensors")
    trainer = DaggerTrainer(replace(MIXED, steps_per_round=1), DEFAULT_BFM_PATH, tmp_path / "run", idle_bfm=idle_bfm)
    trainer._obs = obs = to_torch(trainer.env.reset())
    idle, reach = (trainer.task.mode == MODES.index(m) for m in ("idle", "reach"))
    assert idle.any() and reach.any()
    trainer.collect()
    label = trainer.buffer.data["label"][: trainer.buffer.size]
    with torch.no_grad():
        specialist = trainer.idle_anchor.action_mean(obs).clamp(-1, 1)
        anchor = trainer.anchor.action_mean(obs).clamp(-1, 1)
    torch.testing.assert_close(label[idle], specialist[idle], atol=0, rtol=0)
    torch.testing.assert_close(label[reach], anchor[reach], atol=0, rtol=0)
    assert not torch.allclose(specialist[idle], anchor[idle])  # the two label sources really differ
    assert "idle labels from BFM" in trainer.recipe
    trainer.round = 1
    trainer.save()
    with pytest.raises(InputError, match="--idle-bfm"):
        dagger(replace(TINY, rounds=2), DEFAULT_BFM_PATH, tmp_path / "run", resume=True)  # without it
    dagger(replace(TINY, rounds=2), DEFAULT_BFM_PATH, tmp_path / "run", resume=True, idle_bfm=idle_bfm)


def test_dagger_needs_an_existing_idle_bfm(tmp_path):
    with pytest.raises(InputError, match="--idle-bfm"):
        dagger(TINY, DEFAULT_BFM_PATH, tmp_path, idle_bfm=tmp_path / "none.safetensors")


def test_walk_labels_from_the_anchor_leave_the_controller_out(tmp_path):
    trainer = DaggerTrainer(replace(MIXED, steps_per_round=1, walk_labels="anchor"), DEFAULT_BFM_PATH, tmp_path)
    trainer._obs = obs = to_torch(trainer.env.reset())
    assert (trainer.task.mode == MODES.index("walk")).any()
    trainer.collect()
    with torch.no_grad():
        anchor = trainer.anchor.action_mean(obs).clamp(-1, 1)
    torch.testing.assert_close(trainer.buffer.data["label"][: trainer.buffer.size], anchor, atol=0, rtol=0)
    with pytest.raises(InputError, match="walk_labels"):
        replace(TINY, walk_labels="teacher")


def test_reach_labels_from_ik_replace_only_the_prompted_arm(tmp_path):
    cfg = replace(MIXED, steps_per_round=1, reach_labels="ik", walk_labels="anchor",
                  curriculum=replace(MIXED.curriculum, mode_probs=(1, 3, 1), reach_task_share=1.0))
    trainer = DaggerTrainer(cfg, DEFAULT_BFM_PATH, tmp_path)
    trainer._obs = obs = to_torch(trainer.env.reset())
    task = trainer.task
    reach = np.flatnonzero(task.mode == MODES.index("reach"))
    assert reach.size and (task.hand[reach] == spec.BODY_NAMES.index("R_Hand")).all()  # the task's right hand
    row = trainer.collect()
    label = trainer.buffer.data["label"][: trainer.buffer.size]
    with torch.no_grad():
        anchor = trainer.anchor.action_mean(obs).clamp(-1, 1)
    for e in range(cfg.num_envs):
        arm = task.teacher_joints[e] if e in reach else np.zeros(0, np.int64)
        rest = np.setdiff1d(np.arange(ACTION_DIM), arm)
        torch.testing.assert_close(label[e, rest], anchor[e, rest], atol=0, rtol=0)
        if e in reach:
            torch.testing.assert_close(label[e, arm], torch.from_numpy(task.teacher_act[e]).float(), atol=0, rtol=0)
    assert not torch.allclose(label[reach], anchor[reach])  # the IK arm is not what the anchor does
    assert 0 < row["reach_hand_dist"] < 3
    assert "reach arms from IK" in trainer.recipe
    with pytest.raises(InputError, match="reach_labels"):
        replace(TINY, reach_labels="teacher")
    with pytest.raises(InputError, match="'anchor' or 'ik'"):
        replace(TINY, reach_labels="ik-step")  # the stepping composite fell 1.7-2.8 times per 10 s: removed
    with pytest.raises(InputError, match="--reach-task-share"):
        replace(TINY, curriculum=replace(TINY.curriculum, reach_task_share=1.5))


def test_friction_range_spreads_over_the_envs(tmp_path):
    trainer = DaggerTrainer(replace(TINY, num_envs=3, friction=(0.5, 2.0)), DEFAULT_BFM_PATH, tmp_path)
    np.testing.assert_allclose([p.friction for p in trainer.env.sim.perturbations], [0.5, 1.0, 2.0])
    assert "(ground friction x0.5-2 over the envs)" in trainer.recipe
    with pytest.raises(InputError, match="two numbers"):
        replace(TINY, friction=(1.0,))


def _glide_file(path, bias: float = 0.0):
    """A glide expert's policy file; bias > 0: a residual that ignores the obs (actor output = bias)."""
    from safetensors.torch import save_file

    from tt_deploy.pretrain.glide_expert import GlidePolicy
    from tt_deploy.sim.mujoco_backend import MujocoSimulator

    torch.manual_seed(5)
    policy = GlidePolicy(MujocoSimulator(1, nthread=1).hm.pd_scale, residual_rad=0.2, hidden=(16,), critic_hidden=(8,))
    if bias:
        with torch.no_grad():
            policy.actor[-1].weight.zero_()
            policy.actor[-1].bias.fill_(bias)
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(path), metadata={"residual_rad": "0.2"})
    return path


def test_glide_labels_are_the_controllers_row_plus_the_experts_residual_in_walk_prompts(tmp_path):
    from tt_deploy.pretrain.glide_expert import residual_joint_ids

    glide = _glide_file(tmp_path / "glide.safetensors", bias=0.5)
    trainer = DaggerTrainer(replace(MIXED, steps_per_round=1, walk_labels="glide"), DEFAULT_BFM_PATH, tmp_path / "run",
                            glide_expert=glide)  # fmt: skip
    trainer._obs = obs = to_torch(trainer.env.reset())
    walk = trainer.task.mode == MODES.index("walk")
    assert walk.any() and (~walk).any()
    trainer.collect()
    label = trainer.buffer.data["label"][: trainer.buffer.size]
    expected = obs["teacher_action"].clone()
    ids = residual_joint_ids()
    pd_scale = torch.as_tensor(trainer.env.sim.hm.pd_scale, dtype=torch.float32)
    expected[:, ids] += 0.2 * np.tanh(0.5) / pd_scale[ids]  # residual_rad x tanh(bias), in action units
    torch.testing.assert_close(label[walk], expected[walk].clamp(-1, 1), atol=1e-6, rtol=0)
    with torch.no_grad():
        anchor = trainer.anchor.action_mean(obs).clamp(-1, 1)
    torch.testing.assert_close(label[~walk], anchor[~walk], atol=0, rtol=0)
    assert "walk labels from glide expert" in trainer.recipe
    trainer.round = 1
    trainer.save()
    with pytest.raises(InputError, match="--glide-expert"):  # another expert than the run's
        dagger(replace(TINY, rounds=2, walk_labels="glide"), DEFAULT_BFM_PATH, tmp_path / "run", resume=True,
               glide_expert=_glide_file(tmp_path / "other.safetensors", bias=0.1))  # fmt: skip
    dagger(replace(TINY, rounds=2, walk_labels="glide"), DEFAULT_BFM_PATH, tmp_path / "run", resume=True,
           glide_expert=glide)  # fmt: skip


def test_glide_labels_see_what_the_expert_saw_in_training(tmp_path):
    """GlideLabels on a GlideEnv's own state and controller row acts as the trained policy does there."""
    from tt_deploy.pretrain.glide_expert import COMMAND_DIM, GlideConfig, GlideLabels, make_env
    from tt_deploy.spec import TASK_OBS_NAME

    glide = _glide_file(tmp_path / "glide.safetensors")
    env = make_env(GlideConfig(num_envs=3, nthread=1), 3, seed=2)
    labels = GlideLabels(glide, env.sim.hm.pd_scale)
    step = env.reset()
    for _ in range(5):
        obs = to_torch(step)
        with torch.no_grad():
            trained = labels.policy.act_deterministic(obs)
        t = env.task
        mine = labels(obs["obs"], env.sim.body_state(), t.tar_dir, t.tar_speed, t.gait, obs[TASK_OBS_NAME][:, COMMAND_DIM:])
        torch.testing.assert_close(mine, trained, atol=1e-6, rtol=0)
        step = env.step(trained.numpy())
    assert labels.policy.residual_rad == 0.2 and labels.policy.actor[0].out_features == 16


@pytest.mark.parametrize("kw, match", [({"walk_labels": "glide"}, "needs --glide-expert"),
                                       ({}, "goes with --walk-labels glide")])  # fmt: skip
def test_glide_expert_and_glide_labels_go_together(tmp_path, kw, match):
    extra = {} if kw else {"glide_expert": _glide_file(tmp_path / "g.safetensors")}
    with pytest.raises(InputError, match=match):
        dagger(replace(TINY, **kw), DEFAULT_BFM_PATH, tmp_path / "run", **extra)


def test_a_foreign_file_is_not_a_glide_expert(tmp_path):
    from tt_deploy.pretrain.glide_expert import load_glide_policy

    with pytest.raises(InputError, match="not a glide expert's policy file"):
        load_glide_policy(DEFAULT_BFM_PATH, np.ones(ACTION_DIM))
