"""Physics perturbations for robustness studies, and the named grids of them.

A `Perturbation` is one cell of a grid: multipliers on the nominal physics plus an action delay
and an observation-noise level. `MujocoSimulator` applies one per environment (all different in
one batch if wanted); `add_obs_noise` is the helper the environment layer calls on observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from tt_deploy.errors import InputError, UnknownNameError

G = 9.81  # m/s^2, the nominal gravity the grids are expressed against


@dataclass(frozen=True)
class Perturbation:
    """Multipliers on the nominal physics (1.0 = unchanged) and two non-physics knobs.

    friction: sliding friction of EVERY geom (MuJoCo takes the max of a contact's two geoms);
    gravity: gravity vector; mass: every humanoid body's mass and inertia;
    motor: PD gains kp and kd together; action_delay: control steps between policy and actuators;
    obs_noise: std of Gaussian noise the env layer adds to observations (`add_obs_noise`).
    """

    friction: float = 1.0
    gravity: float = 1.0
    mass: float = 1.0
    motor: float = 1.0
    action_delay: int = 0
    obs_noise: float = 0.0

    def __post_init__(self):
        for f in ("friction", "gravity", "mass", "motor"):
            value = getattr(self, f)
            if not np.isfinite(value) or value <= 0:
                raise InputError(f"Perturbation.{f} must be a positive multiplier; got {value}")
        if int(self.action_delay) != self.action_delay or self.action_delay < 0:
            raise InputError(f"Perturbation.action_delay must be an integer >= 0; got {self.action_delay}")
        if not np.isfinite(self.obs_noise) or self.obs_noise < 0:
            raise InputError(f"Perturbation.obs_noise must be >= 0; got {self.obs_noise}")

    @property
    def name(self) -> str:
        """Readable cell name: the knobs that differ from nominal, e.g. 'gravity=1.53,friction=0.4'."""
        parts = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self)
                 if getattr(self, f.name) != f.default]
        return ",".join(parts) or "nominal"

    @property
    def is_physical_nominal(self) -> bool:
        return (self.friction, self.gravity, self.mass, self.motor) == (1.0, 1.0, 1.0, 1.0)


NOMINAL = Perturbation()


def per_env(perturbation, num_envs: int) -> tuple[Perturbation, ...]:
    """None, one Perturbation, or a sequence of num_envs -> a tuple of num_envs Perturbations."""
    if perturbation is None:
        return (NOMINAL,) * num_envs
    if isinstance(perturbation, Perturbation):
        return (perturbation,) * num_envs
    if isinstance(perturbation, Sequence) and all(isinstance(p, Perturbation) for p in perturbation):
        if len(perturbation) != num_envs:
            raise InputError(f"need one Perturbation per environment ({num_envs}); got {len(perturbation)}")
        return tuple(perturbation)
    raise InputError(f"perturbation must be a Perturbation or a sequence of them; got {type(perturbation).__name__}")


def friction_range(value, owner: str = "") -> tuple[float, float]:
    """A (LOW, HIGH) pair of friction multipliers, 0 < LOW <= HIGH, or a typed error (prefixed with owner)."""
    what = f"{owner} friction range" if owner else "friction range"
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be two numbers LOW, HIGH; got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise InputError(f"{what} must be 0 < LOW <= HIGH; got {low}, {high}")
    return low, high


def friction_spread(num_envs: int, low: float, high: float) -> tuple[Perturbation, ...]:
    """num_envs Perturbations whose friction multipliers are evenly spaced in log between low and high (training
    on a range of ground friction: no random draw, so a resumed run rebuilds the same envs)."""
    low, high = friction_range((low, high))
    return tuple(Perturbation(friction=float(f)) for f in np.geomspace(low, high, num_envs))


def add_obs_noise(x: np.ndarray, std, rng: np.random.Generator) -> np.ndarray:
    """x (N, ...) plus Gaussian noise of std (scalar or (N,) per environment); x itself is untouched."""
    std = np.asarray(std, dtype=np.float64)
    if std.ndim == 1:
        if std.shape[0] != x.shape[0]:
            raise InputError(f"per-env std has {std.shape[0]} entries for {x.shape[0]} environments")
        std = std.reshape((-1,) + (1,) * (x.ndim - 1))
    elif std.ndim != 0:
        raise InputError(f"std must be a scalar or (N,); got shape {std.shape}")
    if not np.any(std > 0):
        return x.copy()
    return x + std * rng.standard_normal(x.shape)


def _one_knob(**levels) -> list[Perturbation]:
    cells = []
    for knob, values in levels.items():
        cells += [Perturbation(**{knob: v}) for v in values]
    return cells


def _default() -> tuple[Perturbation, ...]:
    """Small grid, one knob per cell, 3 levels each (the nominal cell appears once)."""
    cells = _one_knob(friction=(0.5, 1.0, 2.0), gravity=(0.75, 1.25), mass=(0.8, 1.2), motor=(0.8, 1.2),
                      action_delay=(1, 2), obs_noise=(0.01, 0.02))
    return tuple(dict.fromkeys(cells))


def _paper() -> tuple[Perturbation, ...]:
    """Task Tokens robustness study: gravity 0.25..2 g, friction 0.5..2, plus the main-table point."""
    gravity = _one_knob(gravity=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0))
    friction = _one_knob(friction=(0.5, 0.75, 1.25, 1.5, 2.0))
    main_table = Perturbation(gravity=round(15.0 / G, 4), friction=0.4)  # -15 m/s^2, friction x0.4
    return tuple(dict.fromkeys(gravity + friction + [main_table]))


_GRIDS = {"default": _default, "paper": _paper}


def grid(name: str) -> tuple[Perturbation, ...]:
    """Named grid of perturbation cells; each cell's `.name` is readable."""
    if name not in _GRIDS:
        raise UnknownNameError("perturbation grid", name, _GRIDS)
    return _GRIDS[name]()


def grid_names() -> tuple[str, ...]:
    return tuple(sorted(_GRIDS))
