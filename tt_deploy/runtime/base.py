"""The graph-runner interface `SkillRuntime` composes, and the chain of two graphs built from it.

A runner takes one skill's feeds - token groups, masks and `task_obs`, all with a batch axis - and returns
its actions. ONNX Runtime (`session.GraphSession`) and native TensorRT (`trt_backend`) each implement it
for one graph; `ChainedRunner` runs a skill's encoder into a BFM graph (split mode, or a BFM session shared
by several skills). So the runtime picks runners once, in its constructor, and its call path has no
mode or backend branches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from tt_deploy.runtime.manifest import TensorSpec


@runtime_checkable
class GraphRunner(Protocol):
    """One skill's graph chain, from feeds to (B, 69) float32 actions."""

    input_names: tuple[str, ...]  # every input it takes, task_obs included, in graph order
    inputs: tuple[TensorSpec, ...]  # their specs ("batch" = the batch axis)
    outputs: tuple[TensorSpec, ...]  # (actions,)
    graphs: tuple[str, ...]  # the bundle graph files it runs, in order (version-relative)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Actions as a new array."""
        ...

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        """Actions written into the caller's C-contiguous float32 `out`; returns `out`."""
        ...


class ChainedRunner:
    """A skill's encoder (task_obs -> task token) run into a BFM graph that takes the token.

    Batch 1 runs the encoder pre-bound to fixed buffers (`bound_runner`, when the encoder offers it): binding
    on every call cost ~10 us of a ~26 us encoder call. The BFM graph (`head`) may be shared by several
    skills' runners.
    """

    def __init__(self, encoder, head, *, task_obs_name: str, token_name: str):
        self.encoder, self.head = encoder, head
        self.task_obs_name, self.token_name = task_obs_name, token_name
        own = [t for t in head.inputs if t.name != token_name]
        self.inputs = tuple(own) + tuple(encoder.inputs)
        self.input_names = tuple(t.name for t in self.inputs)
        self.outputs = head.outputs
        self.graphs = tuple(encoder.graphs) + tuple(head.graphs)
        self._encode: Callable[[], None] | None = None
        bind = getattr(encoder, "bound_runner", None)
        if bind is not None:
            (obs,) = [t for t in encoder.inputs if t.name == task_obs_name]
            (token,) = encoder.outputs
            self._obs = np.zeros((1, int(obs.shape[-1])), np.float32)
            self._token = np.empty((1, int(token.shape[-1])), np.float32)
            self._encode = bind({task_obs_name: self._obs}, self._token)

    def _head_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = feeds.pop(self.task_obs_name)
        if obs.shape[0] == 1 and self._encode is not None:  # pre-bound: token into the scratch, no allocation
            np.copyto(self._obs, obs)
            self._encode()
            feeds[self.token_name] = self._token
        else:
            feeds[self.token_name] = self.encoder.run({self.task_obs_name: obs})
        return feeds

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.head.run(self._head_feeds(feeds))

    def run_into(self, feeds: dict[str, np.ndarray], out: np.ndarray) -> np.ndarray:
        return self.head.run_into(self._head_feeds(feeds), out)


__all__ = ["GraphRunner", "ChainedRunner"]
