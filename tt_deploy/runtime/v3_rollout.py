"""Run an exported ProtoMotions v3 MaskedMimic graph (export/v3_graph.py) step by step, torch-free.

The v3 model reads its own previous raw action, so a controller must carry it between control steps:
zeros at episode start, then each step's output (the original's rollout). The latent noise is drawn once
per episode in the original; zeros give the prior mean, the deterministic default here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tt_deploy.errors import BundleError, InputError
from tt_deploy.spec import V3_ACTIONS, V3_PREVIOUS_ACTIONS, V3_VAE_NOISE


class V3Rollout:
    """Run an exported v3 graph step by step with ONNX Runtime, carrying `previous_actions` per env (zeros at
    episode start, as the original) and a per-episode `vae_noise` (zeros = the mean, or given). Torch-free."""

    def __init__(self, path: str | Path, num_envs: int, vae_noise: np.ndarray | None = None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        if V3_PREVIOUS_ACTIONS not in shapes or V3_VAE_NOISE not in shapes:
            raise BundleError(f"{path}: not a ProtoMotions v3 graph (inputs {sorted(shapes)})")
        self.num_envs = int(num_envs)
        batch = {s[0] for s in shapes.values()}
        if self.num_envs < 1 or (batch == {1} and self.num_envs != 1):
            raise InputError(f"{path} is a batch-1 graph (or num_envs < 1): num_envs {num_envs}; use the "
                             "dynamic-batch protomotions_v3.batch.onnx for several envs")  # fmt: skip
        types = {i.name: i.type for i in self.session.get_inputs()}
        # every input but the state, with its (num_envs, width) shape and dtype, checked on each step
        self.obs_spec = {n: ((self.num_envs, int(shapes[n][-1])), np.bool_ if types[n] == "tensor(bool)" else np.float32)
                         for n in shapes if n not in (V3_PREVIOUS_ACTIONS, V3_VAE_NOISE)}  # fmt: skip
        self.previous = np.zeros((self.num_envs, int(shapes[V3_PREVIOUS_ACTIONS][-1])), np.float32)
        self.noise = np.zeros((self.num_envs, int(shapes[V3_VAE_NOISE][-1])), np.float32)
        if vae_noise is not None:
            self.noise[:] = self._noise(vae_noise, self.num_envs)

    def _noise(self, vae_noise, rows: int) -> np.ndarray:
        noise = np.asarray(vae_noise, np.float32)
        if noise.shape not in ((rows, self.noise.shape[1]), (self.noise.shape[1],)) or not np.isfinite(noise).all():
            raise InputError(f"vae_noise: expected finite ({rows}, {self.noise.shape[1]}) values, got shape {noise.shape}")
        return noise

    def reset(self, env_ids, vae_noise: np.ndarray | None = None) -> None:
        """Episode start for env_ids: previous actions zero; the noise zero or the given draw."""
        ids = np.atleast_1d(np.asarray(env_ids, np.int64))
        self.previous[ids] = 0.0
        self.noise[ids] = 0.0 if vae_noise is None else self._noise(vae_noise, len(ids))

    def step(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Raw actions (num_envs, action_dim) for one control step; obs holds every other input by name."""
        if set(obs) != set(self.obs_spec):
            raise InputError(f"v3 inputs: expected {sorted(self.obs_spec)}, got {sorted(obs)} (the state inputs "
                             f"{V3_PREVIOUS_ACTIONS} and {V3_VAE_NOISE} are carried here)")  # fmt: skip
        for name, (shape, dtype) in self.obs_spec.items():
            x = obs[name]
            if not isinstance(x, np.ndarray) or x.shape != shape or x.dtype != dtype:
                raise InputError(f"v3 input {name}: expected a {np.dtype(dtype).name} array of shape {shape}, got "
                                 f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")  # fmt: skip
        feeds = {**obs, V3_PREVIOUS_ACTIONS: self.previous, V3_VAE_NOISE: self.noise}
        actions = self.session.run([V3_ACTIONS], feeds)[0]
        if not np.isfinite(actions).all():
            raise InputError("non-finite actions from the v3 graph: check the inputs for NaN / inf")
        self.previous = actions.astype(np.float32, copy=True)
        return actions
