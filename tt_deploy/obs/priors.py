"""Task priors: the hand-made joint-conditioning prompt of each skill, rebuilt every control step.

A prior turns (body state, task goal) into a target-pose prompt (`TargetPoses`, obs/prompts.py) for
the BFM: what `--method prior-only` evaluates alone and what a task token is trained beside. This is
the one implementation: training, evaluation, sim2sim, verify, the demo and a robot controller all
call it, and a bundle's `skill.json` records `{"name", "params"}` so a controller rebuilds it with
`make_prior(name, num_envs, **params)` from this numpy-only module.

Use, per episode and per control step (the goal arrays each prior reads are in its `goal_keys`):

    prior = make_prior("reach", num_envs)
    prior.reset(env_ids, state)                 # at episode start (records what the prior remembers)
    targets = prior(state, {"target": p, "goal_age_steps": k})   # before each action

Every prior is vectorised over N envs; positions are world metres (terrain included), like
`BodyState.pos`. Reference behaviour (rvainshtein/task-tokens, `create_hand_crafted_prior` of each
`masked_mimic_inversion/<task>/common.py`) is cited where a prior follows it; where the embedded BFM
was pretrained on a different prompt for the same intent (walking: a pelvis "carrot" 1 s ahead),
the prior uses the prompt the BFM knows (docs/tasks.md "Priors").
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.prompts import TargetPoses, sparse_targets
from tt_deploy.obs.state import BodyState

PELVIS_ID = spec.BODY_NAMES.index("Pelvis")


def _unit_xy(v: np.ndarray) -> np.ndarray:
    """(N, 2) unit vectors of (N, 2) vectors (zero vectors -> +x)."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm > 1e-9, v / np.maximum(norm, 1e-9), np.array([1.0, 0.0]))


def walk_prompt(state: BodyState, direction: np.ndarray, speed: np.ndarray, heading: np.ndarray,
                pelvis_z: np.ndarray, lookahead_s: float) -> TargetPoses:
    """Far-slot "pelvis `lookahead_s` ahead along `direction` at `speed`, facing `heading`, moving at that
    velocity": the walk prompt the embedded BFM was pretrained on (a carrot rebuilt every step).

    direction (N, 2) world unit vectors; speed (N,) m/s; heading (N,) rad; pelvis_z (N,) m world.
    """
    n = state.pos.shape[0]
    vel = np.asarray(speed, dtype=np.float64)[:, None] * direction
    carrot = state.pos[:, PELVIS_ID, :2] + vel * lookahead_s
    return sparse_targets(n, lookahead_s, body_pos={"Pelvis": np.concatenate([carrot, pelvis_z[:, None]], -1)},
                          heading=heading, root_lin_vel=np.concatenate([vel, np.zeros((n, 1))], -1))


class Prior:
    """A skill's prior prompt for N envs. Subclasses set `name`, `goal_keys` and `_prompt`."""

    name: ClassVar[str]
    goal_keys: ClassVar[tuple[str, ...]]

    def __init__(self, num_envs: int, **params):
        if int(num_envs) <= 0:
            raise InputError(f"num_envs must be > 0, got {num_envs}")
        self.num_envs = int(num_envs)
        self.params = dict(params)
        self.pelvis_z = np.zeros(self.num_envs)  # world pelvis height at each env's reset (the walk prompts')

    def reset(self, env_ids, state: BodyState) -> None:
        """Episode start of env_ids; `state` holds all N envs after their reset."""
        ids = np.asarray(env_ids, dtype=np.int64)
        self.pelvis_z[ids] = state.pos[ids, PELVIS_ID, 2]

    def __call__(self, state: BodyState, goal: dict[str, np.ndarray]) -> TargetPoses:
        missing = [k for k in self.goal_keys if k not in goal]
        if missing:
            raise InputError(f"prior {self.name!r} needs goal arrays {list(self.goal_keys)}; missing {missing}")
        return self._prompt(state, {k: np.asarray(goal[k], dtype=np.float64) for k in self.goal_keys})

    def describe(self) -> dict:
        """What `skill.json` records: enough to rebuild this prior with `make_prior`."""
        return {"name": self.name, "params": dict(self.params), "goal_keys": list(self.goal_keys)}

    def _prompt(self, state: BodyState, goal: dict[str, np.ndarray]) -> TargetPoses:
        raise NotImplementedError


class DirectionPrior(Prior):
    """Direction: the pelvis `lookahead_s` ahead along the command at the commanded speed, heading along it.

    goal: direction (N, 2) world unit vectors, speed (N,) m/s.
    """

    name = "direction"
    goal_keys = ("direction", "speed")

    def __init__(self, num_envs: int, lookahead_s: float = 1.0):
        if not lookahead_s > 0:
            raise InputError(f"lookahead_s must be > 0, got {lookahead_s}")
        super().__init__(num_envs, lookahead_s=float(lookahead_s))

    def _prompt(self, state, goal):
        d = _unit_xy(goal["direction"])
        return walk_prompt(state, d, goal["speed"], np.arctan2(d[:, 1], d[:, 0]), self.pelvis_z,
                           self.params["lookahead_s"])


class SteeringPrior(DirectionPrior):
    """Steering: the direction prior with the heading set to the facing direction.

    goal: direction (N, 2), speed (N,), facing (N, 2) world unit vectors.
    """

    name = "steering"
    goal_keys = ("direction", "speed", "facing")

    def _prompt(self, state, goal):
        d, f = _unit_xy(goal["direction"]), _unit_xy(goal["facing"])
        return walk_prompt(state, d, goal["speed"], np.arctan2(f[:, 1], f[:, 0]), self.pelvis_z,
                           self.params["lookahead_s"])


class ReachPrior(Prior):
    """Reach: "right hand at the target", due `early_steps` before measuring starts (at least `min_lead_steps`
    ahead), counted down every step. Ref reach/common.py: (reach_steps - progress - 10).clamp(3).

    goal: target (N, 3) world m, goal_age_steps (N,) control steps since this target was set.
    """

    name = "reach"
    goal_keys = ("target", "goal_age_steps")

    def __init__(self, num_envs: int, measure_after_steps: int = 60, early_steps: int = 10, min_lead_steps: int = 3):
        if not 1 <= min_lead_steps or early_steps < 0 or measure_after_steps < 1:
            raise InputError(f"bad reach prior timing: measure_after_steps={measure_after_steps}, "
                             f"early_steps={early_steps}, min_lead_steps={min_lead_steps}")
        super().__init__(num_envs, measure_after_steps=int(measure_after_steps), early_steps=int(early_steps),
                         min_lead_steps=int(min_lead_steps))

    def _prompt(self, state, goal):
        p = self.params
        left = np.maximum(p["measure_after_steps"] - p["early_steps"] - goal["goal_age_steps"], p["min_lead_steps"])
        return sparse_targets(self.num_envs, left * spec.CONTROL_DT, body_pos={"R_Hand": goal["target"]})


class StrikePrior(Prior):
    """Strike: approach, then hand to target, switched by a forward-only state machine.

    Approach: face the target and move toward it at `approach_speed` in `lookahead_s`; once the pelvis
    is within `strike_radius` (xy) of the target, "R_Hand at the target's centre in `strike_lead_s`".
    goal: target (N, 3) world m (the target's centre). `phase` (N,) 0 approach / 1 strike is the state.

    `strike_radius` 0.55 m: the embedded BFM stops walking when the prompt switches to the hand, and its
    hand reaches 0.2-0.6 m from the shoulder (the card's hand row): a switch at 1.2 m leaves the hand
    0.76 m from the pillar's centre and topples 1.6 % of pillars. Measured with
    `python scripts/strike_probe.py --prior strike_radius=R` (prior-only, `bfm` goals, 64 evaluation
    episodes, seed 0), success at R = 1.2 / 0.9 / 0.7 / 0.65 / 0.55 / 0.4 m: 1.6 / 3.1 / 3.1 / 3.1 /
    10.9 / 6.2 % (closer than 0.55 m the body bumps the pillar: illegal contact 34 -> 53 %).
    """

    name = "strike"
    goal_keys = ("target",)

    def __init__(self, num_envs: int, strike_radius: float = 0.55, approach_speed: float = 1.0,
                 lookahead_s: float = 1.0, strike_lead_s: float = 0.3):
        if not (strike_radius > 0 and approach_speed >= 0 and lookahead_s > 0 and strike_lead_s > 0):
            raise InputError("strike prior: strike_radius, lookahead_s, strike_lead_s must be > 0, approach_speed >= 0")
        super().__init__(num_envs, strike_radius=float(strike_radius), approach_speed=float(approach_speed),
                         lookahead_s=float(lookahead_s), strike_lead_s=float(strike_lead_s))
        self.phase = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, env_ids, state) -> None:
        super().reset(env_ids, state)
        self.phase[np.asarray(env_ids, dtype=np.int64)] = 0

    def _prompt(self, state, goal):
        p, tar = self.params, goal["target"]
        to_tar = tar[:, :2] - state.pos[:, PELVIS_ID, :2]
        self.phase = np.maximum(self.phase, (np.linalg.norm(to_tar, axis=-1) < p["strike_radius"]).astype(np.int64))
        d = _unit_xy(to_tar)
        vel = np.concatenate([p["approach_speed"] * d, np.zeros((self.num_envs, 1))], axis=-1)
        approach = sparse_targets(self.num_envs, p["lookahead_s"], heading=np.arctan2(d[:, 1], d[:, 0]),
                                  root_lin_vel=vel)
        strike = sparse_targets(self.num_envs, p["strike_lead_s"], body_pos={"R_Hand": tar})
        use_strike = self.phase == 1
        for name in vars(approach):
            a, b = getattr(approach, name), getattr(strike, name)
            setattr(approach, name, np.where(use_strike.reshape((-1,) + (1,) * (a.ndim - 1)), b, a))
        return approach


class LongJumpPrior(Prior):
    """Long jump: run along the line toward the goal - the walk prompt toward `goal` at `speed`.

    goal: goal (N, 3) world m (the task's goal point beyond the jump line).
    """

    name = "long_jump"
    goal_keys = ("goal",)

    def __init__(self, num_envs: int, speed: float = 1.2, lookahead_s: float = 1.0):
        if not (speed >= 0 and lookahead_s > 0):
            raise InputError(f"long_jump prior: speed must be >= 0 and lookahead_s > 0, got {speed}, {lookahead_s}")
        super().__init__(num_envs, speed=float(speed), lookahead_s=float(lookahead_s))

    def _prompt(self, state, goal):
        d = _unit_xy(goal["goal"][:, :2] - state.pos[:, PELVIS_ID, :2])
        return walk_prompt(state, d, np.full(self.num_envs, self.params["speed"]), np.arctan2(d[:, 1], d[:, 0]),
                           self.pelvis_z, self.params["lookahead_s"])


PRIORS: dict[str, type[Prior]] = {c.name: c for c in (DirectionPrior, SteeringPrior, ReachPrior, StrikePrior,
                                                       LongJumpPrior)}


def make_prior(name: str, num_envs: int, **params) -> Prior:
    """The prior registered as `name` (a skill.json's `prior.name`) with its recorded `params`."""
    if name not in PRIORS:
        raise UnknownNameError("prior", name, tuple(PRIORS))
    try:
        return PRIORS[name](num_envs, **params)
    except TypeError as e:
        raise InputError(f"prior {name!r}: bad parameters {sorted(params)}: {e}") from None
