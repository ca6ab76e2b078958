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
        self.previous = np.zeros((self.num_envs, int(shapes[V3_PREVIOUS_ACTIONS][-1])), np.float32)
        noise_dim = int(shapes[V3_VAE_NOISE][-1])
        self.noise = np.zeros((self.num_envs, noise_dim), np.float32) if vae_noise is None else \
            np.asarray(vae_noise, np.float32).reshape(self.num_envs, noise_dim).copy()  # fmt: skip

    def reset(self, env_ids, vae_noise: np.ndarray | None = None) -> None:
        """Episode start for env_ids: previous actions zero; the noise zero or the given draw."""
        self.previous[env_ids] = 0.0
        self.noise[env_ids] = 0.0 if vae_noise is None else vae_noise

    def step(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Raw actions (num_envs, action_dim) for one control step; obs holds every other input by name."""
        feeds = {**obs, V3_PREVIOUS_ACTIONS: self.previous, V3_VAE_NOISE: self.noise}
        actions = self.session.run([V3_ACTIONS], feeds)[0]
        if not np.isfinite(actions).all():
            raise InputError("non-finite actions from the v3 graph: check the inputs for NaN / inf")
        self.previous = actions.astype(np.float32, copy=True)
        return actions
