"""DAgger distillation of the walking controller (and of the BFM's own standing and reaching) into the BFM.

Why: cloned on the controller's own states (recipe v4) the BFM fits its walk actions with R^2 0.95,
but on the states its own walking reaches R^2 drops to 0.08 and it falls (compounding error). DAgger
(Ross et al. 2011) fixes exactly that: the BFM walks, the controller labels the states it reaches,
and every round trains on all labels so far. Each round:
1. collect `steps_per_round` control steps of all envs, executing beta x controller + (1 - beta) x BFM
   (its mean action) in walk prompts and the BFM alone elsewhere;
2. label every sample: walk prompts get the controller's whole action row (legs and trunk, rest pose
   elsewhere: what it walks with), idle and reach prompts get the starting BFM's mean action (a frozen
   copy: the "anchor" that keeps standing, push recovery and reaching as they were; `--idle-bfm`,
   `walk_labels` and `reach_labels` change who labels which prompts);
3. append to a FIFO buffer and take `updates_per_round` Adam steps of squared error on it.
`beta` decays each round; normalisers stay frozen. The walk statistics of a round (falls, speed) are
of the executed blend, not of the BFM alone (beta of the actions are the controller's). The buffer
holds ~16.5 KB a sample (the BFM's input tokens): ~4.2 GB of RAM at the default 256 k. Checkpoints
every round; `--resume` continues from the last round's weights and optimiser with an empty buffer
(it would be ~4 GB on disk), and must start from the same `--init-bfm` (the anchor; checked by hash).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from tt_deploy import spec
from tt_deploy.errors import InputError
from tt_deploy.hashing import sha256_file
from tt_deploy.models.checkpoints import load_bfm, pretraining_cost, save_bfm
from tt_deploy.pretrain.policy import PretrainPolicy
from tt_deploy.pretrain.prompt_task import MODES, PromptCurriculum, PromptTask
from tt_deploy.pretrain.teacher_env import TeacherEnv
from tt_deploy.rl.run_log import RunLog
from tt_deploy.rl.runner import Stopper, atomic_torch_save, load_training_state, to_torch
from tt_deploy.sim.perturbations import friction_range, friction_spread
from tt_deploy.tasks.base import PELVIS_ID

log = logging.getLogger(__name__)
RECIPE = "walk DAgger v1"
WALK = MODES.index("walk")
IDLE = MODES.index("idle")
REACH = MODES.index("reach")
CLAMP = spec.ACTION_CLAMP
WALK_LABELS = ("controller", "anchor", "glide")


@dataclass(frozen=True)
class DaggerConfig:
    """Defaults sized for 2 CPU cores (~25 s a round)."""

    num_envs: int = 128
    rounds: int = 60
    steps_per_round: int = 100  # control steps of all envs: 12,800 samples a round
    # the controller's share of the actions executed in walk prompts, beta x controller + (1 - beta) x BFM:
    # (start, decay a round, floor)
    beta: tuple[float, float, float] = (0.8, 0.93, 0.0)
    # std added to executed actions; 0.03 (PPO pretraining's std) made the controller alone fall 2.25 times
    # in 10 s instead of 0.25
    buffer_size: int = 256_000
    updates_per_round: int = 100
    batch_size: int = 2048
    lr: float = 5e-5
    max_grad_norm: float = 1.0
    curriculum: PromptCurriculum = field(default_factory=lambda: PromptCurriculum(
        mode_probs=(0.25, 0.25, 0.5), push_interval_s=3.0, push_speed=(0.2, 0.8), walk_speed=(0.3, 1.2)))
    # also keep the BFM of every k-th round (1.9 MB each): the best round is not always the last (0 = none)
    keep_every: int = 5
    # who labels walk prompts: "controller" (the walking controller's row), "anchor" (the starting BFM,
    # like idle and reach: keeps its walk while --idle-bfm teaches another idle behaviour) or "glide" (a
    # trained glide expert, pretrain/glide_expert.py: the controller's row plus its residual; needs --glide-expert)
    walk_labels: str = "controller"
    # who labels reach prompts: "anchor" (the starting BFM); "ik" (the anchor, but the prompted arm's 6
    # shoulder / elbow hinges from the IK teacher, pretrain/reach_teacher.py: reaching the goals the anchor misses,
    # e.g. the reference reach task's targets with curriculum.reach_task_share > 0)
    reach_labels: str = "anchor"
    friction: tuple[float, float] = (1.0, 1.0)  # per-env ground friction multipliers, log-spaced LOW..HIGH
    seed: int = 0
    nthread: int = 2

    def __post_init__(self):
        for name in ("num_envs", "rounds", "steps_per_round", "updates_per_round", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"DAgger {name} must be >= 1, got {getattr(self, name)}")
        if self.buffer_size < self.num_envs:
            raise InputError(f"DAgger buffer_size {self.buffer_size} < num_envs {self.num_envs}: one step would "
                             "overwrite itself")  # fmt: skip
        if len(self.beta) != 3 or not (0 <= self.beta[2] <= 1 and 0 <= self.beta[0] <= 1 and 0 < self.beta[1] <= 1):
            raise InputError(f"DAgger beta (start, decay, floor) must be in [0, 1] with decay > 0, got {self.beta}")
        if self.keep_every < 0:
            raise InputError(f"DAgger keep_every must be >= 0 (0 = keep only the last), got {self.keep_every}")
        if self.walk_labels not in WALK_LABELS:
            raise InputError(f"DAgger walk_labels must be one of {', '.join(WALK_LABELS)}, got {self.walk_labels!r}")
        if self.reach_labels not in ("anchor", "ik"):
            raise InputError(f"DAgger reach_labels must be 'anchor' or 'ik', got {self.reach_labels!r}")
        friction_range(self.friction, "DAgger")  # a bad range fails here, before any env is built
        if self.lr <= 0:
            raise InputError(f"DAgger lr must be > 0, got {self.lr}")

    def beta_at(self, round_: int) -> float:
        start, decay, floor = self.beta
        return max(floor, start * decay**round_)


class Buffer:
    """A FIFO ring of (BFM inputs, label) rows."""

    def __init__(self, capacity: int):
        self.capacity, self.size, self.head = capacity, 0, 0
        self.data: dict[str, torch.Tensor] = {}

    def add(self, rows: dict[str, torch.Tensor]) -> None:
        n = next(iter(rows.values())).shape[0]
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in rows.items()}
        idx = (self.head + torch.arange(n)) % self.capacity
        for k, v in rows.items():
            self.data[k][idx] = v
        self.head = int((self.head + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch,), generator=gen)
        return {k: v[idx] for k, v in self.data.items()}


class DaggerTrainer:
    """The student BFM, its frozen anchor, the prompt environment and the label buffer of one DAgger run."""

    def __init__(self, cfg: DaggerConfig, init_bfm: Path, out_dir: Path, idle_bfm: Path | None = None,
                 glide_expert: Path | None = None):
        from tt_deploy.sim.mujoco_backend import MujocoSimulator

        torch.manual_seed(cfg.seed)
        self.cfg, self.out_dir = cfg, Path(out_dir)
        bfm, info = load_bfm(init_bfm)
        self.anchor_sha256 = sha256_file(init_bfm)
        steps, wall = pretraining_cost(info)
        self.init_cost = {"init_env_steps": steps or 0, "init_wall_seconds": wall or 0.0}
        self.recipe = f"{info['recipe']} + {RECIPE}" if info.get("recipe") else RECIPE  # provenance chain
        self.student = PretrainPolicy(bfm)
        self.anchor = PretrainPolicy(copy.deepcopy(bfm)).eval()
        for p in self.anchor.parameters():
            p.requires_grad_(False)
        self.idle_anchor, self.idle_sha256 = None, None  # labels of idle prompts when not the anchor's
        if idle_bfm is not None:
            self.idle_anchor = PretrainPolicy(load_bfm(idle_bfm)[0]).eval()
            for p in self.idle_anchor.parameters():
                p.requires_grad_(False)
            self.idle_sha256 = sha256_file(idle_bfm)
            self.recipe += f" (idle labels from BFM {self.idle_sha256[:12]})"
        if tuple(cfg.friction) != (1.0, 1.0):
            self.recipe += f" (ground friction x{cfg.friction[0]:g}-{cfg.friction[1]:g} over the envs)"
        if cfg.reach_labels != "anchor":
            self.recipe += f" (reach arms from IK, {cfg.curriculum.reach_task_share:.0%} of reach goals task-like)"
        self.opt = torch.optim.Adam(self.student.bfm.parameters(), lr=cfg.lr)
        sim = MujocoSimulator(cfg.num_envs, nthread=cfg.nthread, seed=cfg.seed,
                              perturbation=friction_spread(cfg.num_envs, *cfg.friction))  # fmt: skip
        # the controller runs even with walk_labels="anchor": it also keeps pushes out of walk prompts
        # (PromptTask._pushable), part of what the v7 run trained on
        self.task = PromptTask(cfg.num_envs, cfg.curriculum, teacher=True, gait_weight=1.0)
        self.env = TeacherEnv(sim, self.task, seed=cfg.seed)
        self.glide, self.glide_sha256 = None, None  # the walk labels' expert (walk_labels "glide")
        if cfg.walk_labels == "glide":
            from tt_deploy.pretrain.glide_expert import GlideLabels

            self.glide = GlideLabels(glide_expert, sim.hm.pd_scale)
            self.glide_sha256 = sha256_file(glide_expert)
            self.recipe += f" (walk labels from glide expert {self.glide_sha256[:12]})"
        self.buffer = Buffer(cfg.buffer_size)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.round, self.env_steps, self.wall_seconds = 0, 0, 0.0
        self._obs = None
        self._since_walk = np.full(cfg.num_envs, 10**6)  # control steps since each env last had a walk prompt

    # --- one round -----------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> dict[str, float]:
        """`steps_per_round` control steps into the buffer; returns the round's walk/fall statistics."""
        cfg, task = self.cfg, self.task
        beta = cfg.beta_at(self.round)
        if self._obs is None:
            self._obs = to_torch(self.env.reset())
        self.student.eval()
        sums = dict.fromkeys(("walk_steps", "walk_speed_steps", "walk_falls", "walk_speed", "walk_err", "other_steps",
                              "other_falls", "other_err", "other_falls_after_walk", "reach_steps", "reach_dist"),
                             0.0)  # fmt: skip
        for _ in range(cfg.steps_per_round):
            obs = self._obs
            inputs = self.student._inputs(obs)  # once: student, anchor and buffer all take the same tokens
            mean = self.student.bfm(inputs).clamp(-CLAMP, CLAMP)
            walk = torch.from_numpy(task.mode == WALK)
            taught = walk if cfg.walk_labels != "anchor" else torch.zeros_like(walk)  # the walk teacher's rows
            walk_label = obs["teacher_action"]
            if self.glide is not None:
                walk_label = self.glide(obs["obs"], self.env.sim.body_state(), task.walk_dir, task.walk_speed,
                                        task.gait, obs["teacher_action"])  # fmt: skip
            label = torch.where(taught[:, None], walk_label, self.anchor.bfm(inputs).clamp(-CLAMP, CLAMP))
            if self.idle_anchor is not None:
                idle = torch.from_numpy(task.mode == IDLE)
                label = torch.where(idle[:, None], self.idle_anchor.bfm(inputs).clamp(-CLAMP, CLAMP), label)
            if cfg.reach_labels != "anchor":  # the IK teacher's arm where it supervises a reach prompt
                supervised = torch.from_numpy(task.mode == REACH)[:, None] & (obs["teacher_weight"] > 0)
                label = torch.where(supervised, obs["teacher_action"], label)
            share = beta * taught.float()[:, None]  # the controller's share of the executed walk actions
            executed = share * label + (1 - share) * mean
            self.buffer.add({**inputs, "label": label})  # copied into the ring
            step = self.env.step(executed.numpy())
            self._obs = to_torch(step)
            self._count(sums, step, walk.numpy(), ((mean - label) ** 2).mean(-1).numpy())
        self.env_steps += cfg.num_envs * cfg.steps_per_round
        per10s = 10.0 / spec.CONTROL_DT
        # walk_*: of the executed blend (beta x controller + (1 - beta) x BFM); mse_*: the BFM's clamped mean
        # action vs its label, per action dimension
        return {"beta": beta,
                "walk_falls_per_10s": sums["walk_falls"] / max(sums["walk_steps"], 1) * per10s,
                "walk_speed": sums["walk_speed"] / max(sums["walk_speed_steps"], 1),
                "other_falls_per_10s": sums["other_falls"] / max(sums["other_steps"], 1) * per10s,
                "other_falls_after_walk_share": (sums["other_falls_after_walk"] / sums["other_falls"]
                                                 if sums["other_falls"] else float("nan")),
                "mse_walk": sums["walk_err"] / max(sums["walk_steps"], 1),
                "mse_other": sums["other_err"] / max(sums["other_steps"], 1),
                # m, the prompted hand to its target over the reach prompts' steps (approach included)
                "reach_hand_dist": sums["reach_dist"] / sums["reach_steps"] if sums["reach_steps"] else float("nan")}

    def _count(self, sums: dict, step, walk: np.ndarray, err: np.ndarray) -> None:
        """Accumulate one step's falls, walking speed and label error, per prompt kind. Envs that just
        ended are already reset (new state, new prompt): they count for falls, not for speed."""
        fell = step.info["fell"] & step.done
        other = ~walk
        state = self.env.sim.body_state()
        vel = state.lin_vel[:, PELVIS_ID, :2]
        speed = np.where(step.done, 0.0, np.sum(vel * self.task.walk_dir, -1))
        after_walk = self._since_walk < 2.0 / spec.CONTROL_DT  # stopping a walk is the hard part of idle
        sums["walk_steps"] += walk.sum()
        sums["walk_speed_steps"] += (walk & ~step.done).sum()
        sums["walk_falls"] += (fell & walk).sum()
        sums["walk_speed"] += speed[walk].sum()
        sums["walk_err"] += err[walk].sum()
        sums["other_steps"] += other.sum()
        sums["other_falls"] += (fell & other).sum()
        sums["other_err"] += err[other].sum()
        sums["other_falls_after_walk"] += (fell & other & after_walk).sum()
        reach = (self.task.mode == REACH) & ~step.done
        sums["reach_steps"] += reach.sum()
        sums["reach_dist"] += self.task.hand_distance(state)[reach].sum()
        self._since_walk = np.where(walk, 0, self._since_walk + 1)
        self._since_walk[step.done] = 10**6

    def train(self) -> dict[str, float]:
        """`updates_per_round` Adam steps on random buffer rows; train_loss is the squared error summed
        over the 69 actions (unclamped output: a label at the clamp still pulls an output beyond it back)."""
        cfg = self.cfg
        self.student.train()
        total = 0.0
        for _ in range(cfg.updates_per_round):
            b = self.buffer.sample(cfg.batch_size, self.gen)
            label = b.pop("label")
            loss = (self.student.bfm(b) - label).pow(2).sum(-1).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.student.bfm.parameters(), cfg.max_grad_norm)
            self.opt.step()
            total += loss.item()
        return {"train_loss": total / max(cfg.updates_per_round, 1)}

    # --- checkpoints ---------------------------------------------------------------------------
    def save(self) -> None:
        """The BFM (loadable by load_bfm, with its cost and recipe) and the trainer state, both atomically."""
        ckpt = self.out_dir / "checkpoints"
        info = {"recipe": self.recipe, "env_steps": self.env_steps, "iterations": self.round,
                "wall_seconds": round(self.wall_seconds, 1), **self.init_cost}  # fmt: skip
        if self.task.gait is not None:  # which controller tuning the walk labels came from
            info["gait_params"] = asdict(self.task.gait.p)
        save_bfm(self.student.bfm, ckpt / "last.safetensors", info=info)
        if self.cfg.keep_every and self.round % self.cfg.keep_every == 0:
            save_bfm(self.student.bfm, ckpt / f"round_{self.round:04d}.safetensors", info=info)
        atomic_torch_save({"opt": self.opt.state_dict(), "round": self.round, "env_steps": self.env_steps,
                           "wall_seconds": self.wall_seconds, "gen": self.gen.get_state(),
                           "bfm": self.student.bfm.state_dict(),
                           "init_cost": self.init_cost, "recipe": self.recipe,
                           "anchor_sha256": self.anchor_sha256, "idle_sha256": self.idle_sha256,
                           "glide_sha256": self.glide_sha256,
                           "config": asdict(self.cfg)},
                          ckpt / "last_state.pt")  # fmt: skip

    def resume(self) -> bool:
        """Continue from the last round. Settings (rounds, beta, lr...) come from this invocation; the
        anchor must be the run's own starting BFM, since it defines every idle/reach label."""
        path = self.out_dir / "checkpoints" / "last_state.pt"
        if not path.is_file():
            return False
        state = load_training_state(path)
        if state.get("anchor_sha256", self.anchor_sha256) != self.anchor_sha256:
            raise InputError(f"--resume: {self.out_dir} started from a BFM with sha256 {state['anchor_sha256'][:12]}..., "
                             f"but --init-bfm has {self.anchor_sha256[:12]}...: pass the run's own --init-bfm")  # fmt: skip
        if state.get("idle_sha256") != self.idle_sha256:
            raise InputError(f"--resume: {self.out_dir} labelled idle prompts with "
                             f"{(state.get('idle_sha256') or 'the anchor')[:12]}, this invocation with "
                             f"{(self.idle_sha256 or 'the anchor')[:12]}: pass the run's own --idle-bfm (or none)")
        if state.get("glide_sha256") != self.glide_sha256:
            raise InputError(f"--resume: {self.out_dir} labelled walk prompts with glide expert "
                             f"{(state.get('glide_sha256') or 'none')[:12]}, this invocation with "
                             f"{(self.glide_sha256 or 'none')[:12]}: pass the run's own --glide-expert")
        self.student.bfm.load_state_dict(state["bfm"])
        self.opt.load_state_dict(state["opt"])
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr  # this invocation's rate, not the checkpoint's
        self.gen.set_state(state["gen"])
        self.round, self.env_steps, self.wall_seconds = state["round"], state["env_steps"], state["wall_seconds"]
        self.init_cost, self.recipe = state["init_cost"], state.get("recipe", self.recipe)
        log.info("resumed at round %d (%d env steps); the sample buffer starts empty", self.round, self.env_steps)
        return True


def dagger(cfg: DaggerConfig, init_bfm: Path, out_dir: Path, *, resume: bool = False, progress=None,
           idle_bfm: Path | None = None, glide_expert: Path | None = None) -> dict:
    """Run (or resume) DAgger rounds; returns a summary. Logs a CSV row per round."""
    if not Path(init_bfm).is_file():
        raise InputError(f"--init-bfm {init_bfm}: no such file (DAgger distils into an existing BFM)")
    if idle_bfm is not None and not Path(idle_bfm).is_file():
        raise InputError(f"--idle-bfm {idle_bfm}: no such file")
    if cfg.walk_labels == "glide" and glide_expert is None:
        raise InputError("--walk-labels glide needs --glide-expert (a glide expert's policy file)")
    if cfg.walk_labels != "glide" and glide_expert is not None:
        raise InputError(f"--glide-expert goes with --walk-labels glide, not {cfg.walk_labels!r}")
    if glide_expert is not None and not Path(glide_expert).is_file():
        raise InputError(f"--glide-expert {glide_expert}: no such file")
    trainer = DaggerTrainer(cfg, init_bfm, out_dir, idle_bfm=idle_bfm, glide_expert=glide_expert)
    if resume and not trainer.resume():
        log.warning("--resume: no checkpoint in %s, starting fresh", out_dir)
    if trainer.round >= cfg.rounds:
        log.warning("%s already ran %d rounds (--rounds %d counts resumed rounds): nothing to do", out_dir,
                    trainer.round, cfg.rounds)  # fmt: skip
    if progress is not None:
        progress({"iteration": trainer.round})
    run_log = RunLog(trainer.out_dir)
    with Stopper() as stopper:
        while trainer.round < cfg.rounds and not stopper.requested:
            t0 = time.perf_counter()
            row = trainer.collect()
            t1 = time.perf_counter()
            row.update(trainer.train())
            t2 = time.perf_counter()
            trainer.round += 1
            trainer.wall_seconds += t2 - t0
            row = {"iteration": trainer.round, "env_steps": trainer.env_steps,
                   "wall_seconds": round(trainer.wall_seconds, 1), "t_collect": t1 - t0, "t_update": t2 - t1,
                   "buffer": trainer.buffer.size, **row}  # fmt: skip
            trainer.save()  # before the log row: a logged round always has its checkpoint
            run_log(row)
            if progress is not None:
                progress(row)
    return {"rounds": trainer.round, "env_steps": trainer.env_steps, "wall_seconds": trainer.wall_seconds,
            "interrupted": stopper.requested}  # fmt: skip
