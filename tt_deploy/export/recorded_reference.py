"""Write a skill's recorded reference: verify inputs and the PyTorch reference's actions on them, so that a
torch-free install can still check its runtime against PyTorch (runtime/parity.py reads and runs it).

Layout (safetensors, numpy): for each case of `runtime.parity.edge_and_random_cases`, `CASE|INPUT` for every BFM
input (the split runtime's full set; the fused runtime reads the groups the skill keeps), `CASE|task_obs`, and
`CASE|actions.fused` / `CASE|actions.split`, the clamped fp32 actions of the fused and the full BFM graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from tt_deploy.atomic import atomic_path
from tt_deploy.export.onnx_graphs import BFMGraph, group_input_names, reference_actions
from tt_deploy.hashing import sha256_file
from tt_deploy.runtime.parity import RECORDED_CASES, REFERENCE_FILE, REFERENCE_SCHEMA, edge_and_random_cases


def write_reference(skill_dir: Path, fused: BFMGraph, full: BFMGraph, visible_groups, task_obs_dim: int,
                    seed: int) -> str:
    """Record the reference of one skill into skill_dir/REFERENCE_FILE; returns its sha256."""
    rng = np.random.default_rng([seed, 7])
    keep = set(group_input_names(visible_groups))
    tensors: dict[str, np.ndarray] = {}
    for case, (inputs, task_obs) in edge_and_random_cases(*RECORDED_CASES, rng, task_obs_dim).items():
        for name, value in inputs.items():
            tensors[f"{case}|{name}"] = np.ascontiguousarray(value)
        tensors[f"{case}|task_obs"] = task_obs
        tensors[f"{case}|actions.fused"] = reference_actions(fused, {k: v for k, v in inputs.items() if k in keep},
                                                             task_obs)  # fmt: skip
        tensors[f"{case}|actions.split"] = reference_actions(full, inputs, task_obs)
    path = skill_dir / REFERENCE_FILE
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"schema": REFERENCE_SCHEMA})
    return sha256_file(path)
