"""Per-environment random streams for goal sampling.

With one shared generator, the goals an env gets depend on when *other* envs ended their episodes.
Two runs that should see the same goals - the reference and the deployed runtime in sim2sim -
would then drift apart as soon as one episode ends a step earlier in one run. `EnvRandom` gives
every env its own stream (seeded from (seed, env index)), so env i's goal sequence depends only
on env i's own history. Tasks ask for the rows they sample: `rows(rng, env_ids).uniform(...)`.
"""

from __future__ import annotations

import numpy as np


class _Rows:
    """Generator-like view drawing row k of every result from the stream of env ids[k]."""

    def __init__(self, gens: list[np.random.Generator], ids: np.ndarray):
        self._gens, self._ids = gens, np.asarray(ids, dtype=np.int64).reshape(-1)

    def _draw(self, size, fn) -> np.ndarray:
        tail = () if size is None or np.isscalar(size) else tuple(size)[1:]
        n = self._ids.size if size is None or np.isscalar(size) else tuple(size)[0]
        if n != self._ids.size:
            raise ValueError(f"drawing {n} rows for {self._ids.size} envs")
        out = [fn(self._gens[i], tail or None) for i in self._ids]
        return np.asarray(out).reshape((n, *tail)) if out else np.zeros((0, *tail))

    def random(self, size=None):
        return self._draw(size, lambda g, s: g.random(s))

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._draw(size, lambda g, s: g.uniform(low, high, s))

    def standard_normal(self, size=None):
        return self._draw(size, lambda g, s: g.standard_normal(s))

    def integers(self, low, high=None, size=None):
        return self._draw(size, lambda g, s: g.integers(low, high, s))

    def choice(self, a, size=None, p=None):
        return self._draw(size, lambda g, s: g.choice(a, s, p=p))


class EnvRandom:
    """One numpy Generator per env; `for_envs(ids)` is what task sampling uses."""

    def __init__(self, num_envs: int, seed: int):
        self.gens = [np.random.default_rng([seed, i]) for i in range(num_envs)]

    def for_envs(self, env_ids) -> _Rows:
        return _Rows(self.gens, env_ids)

    def state(self) -> list[dict]:
        return [g.bit_generator.state for g in self.gens]

    def set_state(self, states: list[dict]) -> None:
        for g, s in zip(self.gens, states, strict=True):
            g.bit_generator.state = s


def rows(rng, env_ids):
    """The draws for env_ids: per-env streams under an EnvRandom, a plain Generator otherwise."""
    return rng.for_envs(env_ids) if isinstance(rng, EnvRandom) else rng
