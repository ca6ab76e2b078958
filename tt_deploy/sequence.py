"""Skill sequencing: chains of a bundle's skills switched by a small state machine, measured against each
skill alone (issue #36 item 6, `ttdeploy sequence`).

The paper says several task tokens can be "selectively and sequentially activated at inference"; this
measures what a switch costs. Torch-free: the deployed `SkillRuntime` drives one MuJoCo humanoid at 30 Hz,
exactly like examples/controller_loop.py (the skill's prior prompt from skill.json `task_prior`, its goal
ranges from skill.json `goals`, the BFM inputs from a `PoseHistory` that runs through every switch).

A chain is a list of stages `skill[:goal]` with a duration each. The state machine, per episode:

- reset the humanoid to the standing pose; stage 0 starts;
- a stage starts by drawing its task's goal from the *current* state (the command) and `runtime.switch`;
  the goal is held for the whole stage (one goal segment per stage: the task's own goal resampling is
  pushed past the stage's end), and the stage runs its skill for its seconds, then the next stage starts;
- goal `pillar` (direction, steering): the command points at the strike pillar, placed when the stage starts
  by the strike task's placement rule restricted to its far placements (near_dist to dist_range[1], so there
  is always a walk), speed = the top of the skill's goal speed range, facing the pillar (steering); the
  stage ends early once the pelvis is within `near_m` (xy) of the pillar, and succeeds when it got there;
  a strike stage right after a pillar stage keeps that pillar (the strike task's own placement otherwise);
- a fall (the bundle's manifest `fall_rule`, = TaskEnv.fallen) or a task termination (strike's illegal
  contact) ends the episode; the stages after it count as not started (and failed).

Each stage's success is its task's own rule at the stage's end (reach / direction / steering: after the
grace, the rule held at every measured step of the stage's goal; strike: the pillar toppled at the last
step), a fall voiding it where the task says so (Task.fall_voids_success); pillar stages: reached. Beside
the reference rule, direction and steering also report the stride rule (docs/tasks.md).

Baseline, in the same run: every distinct stage alone from a fresh reset (same goal rule, same seconds, as
many episodes), so the product of the single-skill successes and the single-skill fall rate are measured.

Switch cost: falls within 1 s after each stage switch (per switch made), and the controller's per-tick
latency (state read -> prompt, BFM inputs, task obs -> runtime.switch on a switch tick -> act_into;
physics and the command's goal reset not included) on ticks where the runtime's active skill changed vs
all other ticks; every skill is warmed up (its first act_into binds its buffers) before the first episode.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError

GOALS = ("task", "pillar")  # a stage's command: its task's own goal, held; or "walk to the strike pillar"
PILLAR_SKILLS = ("direction", "steering")  # skills whose command can point at the pillar
PILLAR = "strike_target"
# default stage seconds per skill: one goal segment as long as the reference task's (reach: U[90, 120)
# control steps per target, mean 3.5 s; direction / steering: 199 steps; strike: its 10 s episode)
DEFAULT_SECONDS = {"reach": 3.5, "direction": 6.6, "steering": 6.6, "strike": 10.0, "long_jump": 10.0}
PILLAR_SECONDS = 10.0  # a pillar stage's time limit by default
NEAR_M = 1.0  # pillar stages end once the pelvis is this close (xy) to the pillar; strike's prior walks the rest
SWITCH_WINDOW_S = 1.0  # a fall this soon after a switch counts against the switch
PRESETS = {  # name -> (chain, stage seconds)
    "reach-reach-direction": ("reach,reach,direction", "3.5,3.5,6.6"),
    "pillar-strike": ("steering:pillar,strike", "10,10"),
}


@dataclass(frozen=True)
class Stage:
    """One stage of a chain: `skill` commanded by `goal` ("task" or "pillar") for at most `seconds`."""

    skill: str
    seconds: float
    goal: str = "task"

    @property
    def label(self) -> str:
        return self.skill if self.goal == "task" else f"{self.skill}:{self.goal}"

    @property
    def steps(self) -> int:
        return max(1, round(self.seconds / spec.CONTROL_DT))


def parse_chain(chain: str, stage_seconds: str | None = None) -> tuple[Stage, ...]:
    """`reach,reach,direction` (or a PRESETS name) + `3.5,3.5,6.6` (one value for every stage, or none: the
    preset's, else DEFAULT_SECONDS) -> stages. Raises InputError / UnknownNameError."""
    from tt_deploy.tasks.registry import resolve_task_name

    if chain in PRESETS:
        chain, preset_seconds = PRESETS[chain]
        stage_seconds = stage_seconds or preset_seconds
    labels = [s.strip() for s in chain.split(",") if s.strip()]
    if not labels:
        raise InputError("--chain names no stage; give skills like reach,reach,direction or a preset: "
                         + ", ".join(PRESETS))
    stages = []
    for label in labels:
        skill, _, goal = label.partition(":")
        skill, goal = resolve_task_name(skill), goal or "task"
        if goal not in GOALS:
            raise UnknownNameError("stage goal", goal, GOALS)
        if goal == "pillar" and skill not in PILLAR_SKILLS:
            raise InputError(f"stage {label!r}: only {', '.join(PILLAR_SKILLS)} can walk to the pillar")
        stages.append((skill, goal))
    if stage_seconds:
        try:
            secs = [float(s) for s in stage_seconds.split(",")]
        except ValueError:
            raise InputError(f"--stage-seconds must be numbers separated by commas, got {stage_seconds!r}") from None
        if len(secs) == 1:
            secs *= len(stages)
        if len(secs) != len(stages):
            raise InputError(f"--stage-seconds gives {len(secs)} durations for {len(stages)} stages")
    else:
        secs = [PILLAR_SECONDS if g == "pillar" else DEFAULT_SECONDS.get(s, 5.0) for s, g in stages]
    if any(not np.isfinite(s) or s <= 0 for s in secs):
        raise InputError(f"stage seconds must be > 0, got {secs}")
    return tuple(Stage(s, float(t), g) for (s, g), t in zip(stages, secs, strict=True))


class FallMonitor:
    """The bundle's recorded fall rule (manifest `fall_rule`, written from TaskEnv.fallen): what a controller's
    fall monitor applies. Older bundles without one get TaskEnv's defaults."""

    def __init__(self, rule):
        from tt_deploy.tasks.base import (
            HEAD_TERMINATION_HEIGHT,
            NON_FOOT,
            TERMINATION_HEIGHT,
            termination_heights,
        )

        if rule is None:
            self.non_foot, self.threshold, self.grace = NON_FOOT, 1.0, 2
            self.heights = termination_heights(TERMINATION_HEIGHT, HEAD_TERMINATION_HEIGHT)
            return
        idx = [spec.BODY_NAMES.index(b) for b in rule.non_foot_bodies]
        self.non_foot = np.isin(np.arange(spec.NUM_BODIES), idx)
        self.heights = np.full(spec.NUM_BODIES, np.inf)
        for b, h in rule.termination_heights.items():
            self.heights[spec.BODY_NAMES.index(b)] = h
        self.threshold, self.grace = float(rule.contact_force_threshold), int(rule.grace_steps)

    def __call__(self, state, sim, steps: int) -> bool:
        """Fallen after `steps` control steps since the episode's reset (this one included)."""
        if steps <= self.grace:
            return False
        contact = np.any((sim.contact_forces()[0] > self.threshold) & self.non_foot)
        height = state.pos[0, :, 2] - sim.ground_height(state.pos[0, :, :2])
        return bool(contact and np.any((height < self.heights) & self.non_foot))


def _stage_task(stage: Stage, card):
    """The stage's task for one env, built from its skill.json (observation width, prior, goal ranges), its
    goal held for the whole stage."""
    from tt_deploy.tasks.goals import task_kwargs_from_record
    from tt_deploy.tasks.registry import make_task_for_skill

    hold = (stage.steps + 1, stage.steps + 2)  # the next goal would be due after the stage's end
    rec = task_kwargs_from_record(stage.skill, card.goals)
    kw = {}
    if stage.skill == "reach":
        kw["change_steps"] = hold
    elif stage.skill in ("direction", "steering"):
        from tt_deploy.tasks.direction import HeadingGoalConfig

        kw["goals"] = dataclasses.replace(rec.get("goals") or HeadingGoalConfig(), change_steps=hold)
    return make_task_for_skill(card, 1, **kw)


def _pillar_placer(strike_goals: dict | None):
    """A strike task that only places the pillar of pillar stages: the strike task's placement (the bundle's
    strike goal ranges, else its defaults) restricted to its far placements, near_dist to dist_range[1]."""
    from tt_deploy.tasks.goals import task_kwargs_from_record
    from tt_deploy.tasks.strike import StrikeTask

    rec = task_kwargs_from_record("strike", strike_goals)
    near, far = rec.get("near_dist", 1.5), rec.get("dist_range", (0.5, 10.0))[1]
    return StrikeTask(1, dist_range=(near, far), near_dist=near, near_prob=0.0)


@dataclass
class _Episode:
    stages: list[dict]
    fell: bool = False
    terminated: bool = False
    unstable: bool = False
    end_stage: int | None = None  # the stage the episode ended in early (fall, termination, instability)
    since_switch_s: float | None = None  # seconds from that stage's start to the end


class SequenceRunner:
    """A runtime over `bundle_dir`, one MuJoCo humanoid and the chain's tasks; `run()` measures."""

    def __init__(self, bundle_dir: str | Path, stages: tuple[Stage, ...], *, backend: str = "auto",
                 near_m: float = NEAR_M, seed: int = 0):
        from tt_deploy.runtime import SkillRuntime
        from tt_deploy.runtime import manifest as mf
        from tt_deploy.sim.mujoco_backend import MujocoSimulator

        manifest = mf.read_manifest(bundle_dir)
        for st in stages:
            if st.skill not in manifest.skills:
                raise InputError(f"the chain names skill {st.skill!r}, which bundle {bundle_dir} does not have; "
                                 f"its skills: {', '.join(sorted(manifest.skills))}")
        if not near_m > 0:
            raise InputError(f"near_m must be > 0, got {near_m}")
        self.stages, self.near_m, self.seed = stages, float(near_m), int(seed)
        self.bundle_dir = Path(bundle_dir)
        skills = sorted({st.skill for st in stages})
        self.runtime = SkillRuntime(bundle_dir, backend=backend, skills=skills, mode="fused")
        cards = self.runtime.skills
        self.fallen = FallMonitor(self.runtime.manifest.fall_rule)
        self.tasks = [_stage_task(st, cards[st.skill]) for st in stages]
        uses_pillar = any(st.goal == "pillar" or st.skill == "strike" for st in stages)
        self.placer = None
        if any(st.goal == "pillar" for st in stages):
            self.placer = _pillar_placer(cards["strike"].goals if "strike" in cards else None)
        objects = sorted({o for t in self.tasks for o in t.objects} | ({PILLAR} if uses_pillar else set()))
        self.sim = MujocoSimulator(1, nthread=1, objects=objects, seed=seed)
        self.has_pillar = PILLAR in objects
        from tt_deploy.obs.inputs import PoseHistory

        self.history = PoseHistory(1)
        self.actions = np.zeros((1, self.runtime.manifest.action_dim), np.float32)
        self.ids = np.arange(1)
        self.switch_ticks_us: list[float] = []  # ticks where the runtime's active skill changed
        self.other_ticks_us: list[float] = []
        self.switch_act_us: list[float] = []  # act_into alone, on those ticks
        self.other_act_us: list[float] = []
        self.runtime_switch_us: list[float] = []  # runtime.switch() alone, on those ticks
        self.command_reset_us: list[float] = []  # a stage's goal reset (task + prior), at every stage start
        self.first_call_us: dict[str, float] = {}

    # --- one stage, one episode -----------------------------------------------------------------
    def _ground(self, state) -> np.ndarray:
        return self.sim.ground_height(state.pos[:, 0, :2])

    def _pillar_xy(self) -> np.ndarray:
        return self.sim.object_state(PILLAR).pos[0, :2]

    def _aim(self, task, state, top_speed: float) -> None:
        """Pillar command: direction (and facing) from the pelvis to the pillar, at the skill's top speed."""
        d = self._pillar_xy() - state.pos[0, 0, :2]
        d = d / max(float(np.linalg.norm(d)), 1e-9)
        task.tar_dir[0] = d
        task.tar_theta[0] = np.arctan2(d[1], d[0])
        task.tar_speed[0] = top_speed
        if hasattr(task, "tar_facing"):
            task.tar_facing[0] = d
            task.facing_theta[0] = task.tar_theta[0]

    def _start_stage(self, i: int, stages, tasks, rng, prev_goal: str | None, timed: bool) -> None:
        st, task = stages[i], tasks[i]
        if st.goal == "pillar":
            self.placer.reset(self.ids, self.sim, rng)  # places the pillar (far placements), from the current state
        keep = self.has_pillar and st.skill == "strike" and prev_goal == "pillar"
        saved = self.sim.object_state(PILLAR) if keep else None
        t0 = time.perf_counter_ns()
        task.reset(self.ids, self.sim, rng)  # the command: its goal from the current state (and its prior's reset)
        if timed:
            self.command_reset_us.append((time.perf_counter_ns() - t0) / 1e3)
        if saved is not None:  # strike after a pillar stage: the pillar the humanoid walked to
            self.sim.set_object_state(PILLAR, self.ids, saved)

    def _park_pillar(self) -> None:
        """Out of the way until a stage places it (a pillar left from the last episode must not trip anyone)."""
        from tt_deploy.obs.state import RigidState

        z3 = np.zeros((1, 3))
        self.sim.set_object_state(PILLAR, self.ids, RigidState(np.array([[100.0, 100.0, 1.0]]),
                                                               np.array([[0.0, 0.0, 0.0, 1.0]]), z3, z3.copy()))

    def _warm_up(self) -> None:
        """One act_into per skill (its first call binds its buffers): what a controller does before its loop."""
        self.sim.reset()
        state = self.sim.body_state()
        self.history.reset(None, state, self._ground(state))
        rng = np.random.default_rng([self.seed, 99])
        for st, task in zip(self.stages, self.tasks, strict=True):
            if st.skill in self.first_call_us:
                continue
            if self.has_pillar:
                self._park_pillar()
            task.reset(self.ids, self.sim, rng)
            self.runtime.switch(st.skill)
            inputs = {n: a[0] for n, a in self._inputs(task, state).items()}
            t0 = time.perf_counter_ns()
            self.runtime.act_into(inputs, task.observe(state, self.sim)[0], self.actions[0])
            self.first_call_us[st.skill] = (time.perf_counter_ns() - t0) / 1e3

    def _inputs(self, task, state):
        from tt_deploy.obs.inputs import bfm_inputs

        return bfm_inputs(state, self._ground(state), self.history, targets=task.prior_targets(state, self.sim))

    def _episode(self, stages, tasks, rng, timed: bool) -> _Episode:
        from tt_deploy.obs.inputs import bfm_inputs

        sim, rt = self.sim, self.runtime
        sim.reset()
        if self.has_pillar:
            self._park_pillar()
        state = sim.body_state()
        self.history.reset(None, state, self._ground(state))
        ep, steps, prev_goal = _Episode(stages=[]), 0, None
        for i, st in enumerate(stages):
            task = tasks[i]
            self._start_stage(i, stages, tasks, rng, prev_goal, timed)
            top_speed = float(task.goals.speed_range[1]) if st.goal == "pillar" else 0.0
            reached = False
            k = 0
            for k in range(st.steps):  # noqa: B007 - k is the stage's last tick below
                t0 = time.perf_counter_ns()
                state = sim.body_state()  # read state
                switched = rt.active != st.skill
                if switched:
                    s0 = time.perf_counter_ns()
                    rt.switch(st.skill)  # O(1): every skill's session is already loaded
                    if timed:
                        self.runtime_switch_us.append((time.perf_counter_ns() - s0) / 1e3)
                if st.goal == "pillar":
                    self._aim(task, state, top_speed)
                ground = self._ground(state)
                targets = task.prior_targets(state, sim)
                inputs = {n: a[0] for n, a in bfm_inputs(state, ground, self.history, targets=targets).items()}
                task_obs = task.observe(state, sim)[0]
                self.history.push(state, ground)
                a0 = time.perf_counter_ns()
                rt.act_into(inputs, task_obs, self.actions[0])
                if timed:
                    t1 = time.perf_counter_ns()
                    (self.switch_ticks_us if switched else self.other_ticks_us).append((t1 - t0) / 1e3)
                    (self.switch_act_us if switched else self.other_act_us).append((t1 - a0) / 1e3)
                sim.step(self.actions)  # PD targets, 1/30 s of physics
                new = sim.body_state()
                task.update(state, new, sim, rng)
                steps += 1
                ep.unstable = bool(np.asarray(getattr(sim, "unstable", False)).any())
                ep.fell = not ep.unstable and self.fallen(new, sim, steps)
                ep.terminated = not ep.unstable and bool(task.terminate(state, new, sim)[0])
                if st.goal == "pillar":
                    reached = float(np.linalg.norm(self._pillar_xy() - new.pos[0, 0, :2])) <= self.near_m
                if ep.fell or ep.terminated or ep.unstable or reached:
                    break
            ended = ep.fell or ep.terminated or ep.unstable
            ok = bool(task.success()[0]) and not ep.unstable and not (ep.fell and task.fall_voids_success)
            rec = {"skill": st.skill, "goal": st.goal, "seconds": (k + 1) * spec.CONTROL_DT,
                   "success": reached and not ended if st.goal == "pillar" else ok, "fell": ep.fell}
            if st.goal == "pillar":
                rec["task_rule_success"] = ok
            book = task.extra_books.get("stride")
            if book is not None:
                rec["stride_success"] = bool(book.measured[0] > 0 and not book.failed[0]) and not ep.unstable \
                    and not (ep.fell and task.fall_voids_success)
            ep.stages.append(rec)
            prev_goal = st.goal
            if ended:
                ep.end_stage, ep.since_switch_s = i, (k + 1) * spec.CONTROL_DT
                break
        return ep

    # --- the measurement ----------------------------------------------------------------------------
    def run(self, episodes: int = 32, progress=None) -> dict:
        """Chain episodes, then every distinct stage alone; the result document (see `summarise`)."""
        if episodes < 1:
            raise InputError(f"episodes must be >= 1, got {episodes}")
        t_start = time.perf_counter()
        self._warm_up()
        singles = list(dict.fromkeys(self.stages))  # distinct stages, chain order
        total = episodes * (1 + len(singles))
        chain_eps = []
        for e in range(episodes):
            chain_eps.append(self._episode(self.stages, self.tasks, np.random.default_rng([self.seed, 0, e]), True))
            if progress:
                progress(e + 1, total)
        single_eps = {}
        for j, st in enumerate(singles):
            task = self.tasks[self.stages.index(st)]
            single_eps[st] = [self._episode((st,), [task], np.random.default_rng([self.seed, 1 + j, e]), False)
                              for e in range(episodes)]
            if progress:
                progress(episodes * (2 + j), total)
        return summarise(self, chain_eps, single_eps, time.perf_counter() - t_start)

    def close(self) -> None:
        self.runtime.close()


def _rate(k: int, n: int) -> dict:
    from tt_deploy.stats import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"k": int(k), "n": int(n), "rate": k / n if n else None, "ci95": [lo, hi]}


def _lat(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    a = np.asarray(samples)
    return {"n": int(a.size), "p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "max_us": float(a.max())}


def summarise(runner: SequenceRunner, chain_eps: list[_Episode], single_eps: dict, wall_s: float) -> dict:
    """The result document: per stage, per switch, chain vs product of singles, falls, latency."""
    stages, n = runner.stages, len(chain_eps)
    window = round(SWITCH_WINDOW_S / spec.CONTROL_DT) * spec.CONTROL_DT
    singles = {}
    for st, eps in single_eps.items():
        row = {"stage": st.label, "seconds": st.seconds, "episodes": len(eps),
               "success": _rate(sum(e.stages[0]["success"] for e in eps), len(eps)),
               "falls": _rate(sum(e.fell for e in eps), len(eps)),
               "terminated": sum(e.terminated for e in eps),  # the task's own early end (strike: illegal contact)
               "falls_within_1s": _rate(sum(e.fell and e.since_switch_s <= window + 1e-9 for e in eps), len(eps)),
               "mean_seconds": float(np.mean([e.stages[0]["seconds"] for e in eps]))}
        if "stride_success" in eps[0].stages[0]:
            row["stride_success"] = _rate(sum(e.stages[0]["stride_success"] for e in eps), len(eps))
        singles[st] = row
    stage_rows = []
    for i, st in enumerate(stages):
        recs = [e.stages[i] for e in chain_eps if len(e.stages) > i]
        row = {"index": i, "stage": st.label, "skill": st.skill, "goal": st.goal, "seconds": st.seconds,
               "rule": "reached the pillar (within near_m)" if st.goal == "pillar" else "task",
               "started": len(recs), "success": _rate(sum(r["success"] for r in recs), n),
               "success_given_started": _rate(sum(r["success"] for r in recs), len(recs)),
               "falls": sum(r["fell"] for r in recs),
               "terminated": sum(e.terminated and e.end_stage == i for e in chain_eps),
               "mean_seconds": float(np.mean([r["seconds"] for r in recs])) if recs else None,
               "single": singles[st]}
        if recs and "stride_success" in recs[0]:
            row["stride_success"] = _rate(sum(r["stride_success"] for r in recs), n)
        if st.goal == "pillar":
            row["task_rule_success"] = _rate(sum(r["task_rule_success"] for r in recs), n)
        stage_rows.append(row)
    switches, made_total, falls_total = [], 0, 0
    for i in range(1, len(stages)):
        made = sum(len(e.stages) > i for e in chain_eps)
        fell = sum(e.fell and e.end_stage == i and e.since_switch_s <= window + 1e-9 for e in chain_eps)
        single = singles[stages[i]]["falls"]
        switches.append({"from": stages[i - 1].label, "to": stages[i].label,
                         "skill_changes": stages[i - 1].skill != stages[i].skill,
                         "falls_within_1s": _rate(fell, made), "incoming_single_fall_rate": single["rate"]})
        made_total, falls_total = made_total + made, falls_total + fell
    chain_ok = [all(r["success"] for r in e.stages) and len(e.stages) == len(stages) for e in chain_eps]
    product = float(np.prod([singles[st]["success"]["rate"] for st in stages]))
    doc = {
        "bundle": str(runner.bundle_dir), "bundle_version": runner.runtime.manifest.content,
        "backend": runner.runtime.backend, "episodes": n, "seed": runner.seed, "near_m": runner.near_m,
        "chain": [st.label for st in stages], "stage_seconds": [st.seconds for st in stages],
        "stages": stage_rows, "switches": switches,
        "chain_success": _rate(sum(chain_ok), n), "product_of_singles": product,
        "chain_minus_product": sum(chain_ok) / n - product,
    }
    if any("stride_success" in r and r["goal"] == "task" for r in stage_rows):
        def stride_or_task(r) -> bool:  # the stride rule where a task stage has it, else the stage's own rule
            return r["stride_success"] if r["goal"] == "task" and "stride_success" in r else r["success"]

        ok = [all(stride_or_task(r) for r in e.stages) and len(e.stages) == len(stages) for e in chain_eps]
        doc["chain_success_stride"] = _rate(sum(ok), n)
        doc["product_of_singles_stride"] = float(np.prod([
            (singles[st]["stride_success"] if st.goal == "task" and "stride_success" in singles[st]
             else singles[st]["success"])["rate"] for st in stages]))
    if len(stages) > 1:
        entered = [singles[st] for st in stages[1:]]
        single_k = sum(s["falls"]["k"] for s in entered)
        single_n = sum(s["falls"]["n"] for s in entered)
        rate = falls_total / made_total if made_total else None
        single_rate = single_k / single_n
        doc["falls"] = {
            "chain": _rate(sum(e.fell for e in chain_eps), n),
            "within_1s_of_switch": _rate(falls_total, made_total),
            "single_fall_rate": single_rate,
            "single_fall_rate_of": "the single runs of the stages a switch enters, pooled (whole stage)",
            "target": "within_1s_of_switch <= single_fall_rate + 0.05",
            "target_met": rate is not None and rate <= single_rate + 0.05,
        }
    else:
        doc["falls"] = {"chain": _rate(sum(e.fell for e in chain_eps), n)}
    doc["terminated"] = sum(e.terminated for e in chain_eps)
    doc["unstable"] = sum(e.unstable for e in chain_eps) + sum(e.unstable for eps in single_eps.values() for e in eps)
    doc["latency_us"] = {
        "tick": "state read -> prompt, BFM inputs, task obs -> runtime.switch on a switch tick -> act_into "
                "(physics and the command's goal reset not included)",
        "switch_ticks": _lat(runner.switch_ticks_us), "other_ticks": _lat(runner.other_ticks_us),
        "act_into_switch_ticks": _lat(runner.switch_act_us), "act_into_other_ticks": _lat(runner.other_act_us),
        "runtime_switch": _lat(runner.runtime_switch_us), "command_reset": _lat(runner.command_reset_us),
        "first_call_per_skill": runner.first_call_us,
    }
    doc["singles"] = list(singles.values())
    doc["wall_s"] = wall_s
    return doc


def run_sequence(bundle_dir: str | Path, chain: str, stage_seconds: str | None = None, *, episodes: int = 32,
                 seed: int = 0, near_m: float = NEAR_M, backend: str = "auto", progress=None) -> dict:
    """Parse the chain, run it and its singles on the bundle; the result document."""
    stages = parse_chain(chain, stage_seconds)
    runner = SequenceRunner(bundle_dir, stages, backend=backend, near_m=near_m, seed=seed)
    try:
        return runner.run(episodes, progress=progress)
    finally:
        runner.close()


__all__ = ["Stage", "PRESETS", "GOALS", "parse_chain", "FallMonitor", "SequenceRunner", "run_sequence", "summarise"]
