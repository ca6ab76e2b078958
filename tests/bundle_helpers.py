"""Shared by tests/export and tests/runtime: a small BFM checkpoint with non-trivial statistics,
fake trained-encoder runs, numpy inputs (the one generator in tt_deploy.export.verify) and a torch
reference forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tt_deploy.export import verify
from tt_deploy.models.bfm import BFM
from tt_deploy.models.checkpoints import EncoderInfo, save_bfm, save_encoder, sha256_file
from tt_deploy.models.config import EncoderConfig, bfm_config
from tt_deploy.models.task_encoder import TaskEncoder


def perturb_stats(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics so the baked-in normalisation is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "num_features") and hasattr(m, "var"):
            m.mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def random_inputs(batch: int, seed: int, visible_p: float = 0.5, scale: float = 2.0) -> dict[str, np.ndarray]:
    """Graph-named numpy inputs (B, ...) for every token group, masks bool True = visible."""
    return verify.random_inputs(batch, np.random.default_rng(seed), visible_p=visible_p, scale=scale)


def torch_actions(bfm: BFM, inputs: dict[str, np.ndarray], task_token: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        return torch.clamp(bfm(t, task_token), -1, 1).numpy()


@pytest.fixture(scope="session")
def small_bfm_file(tmp_path_factory):
    torch.manual_seed(0)
    bfm = BFM(bfm_config("small")).freeze()
    perturb_stats(bfm, 1)
    path = save_bfm(bfm, tmp_path_factory.mktemp("bfm") / "bfm_small.safetensors", info={"note": "test"})
    return bfm, path


def make_run(root, bfm_path, skill: str, obs_dim: int, token_dim: int, seed: int, **info_extra):
    """A fake training run dir with checkpoints/best.safetensors (info as the trainer writes it, plus
    `info_extra`, e.g. task_prior / visible_groups); returns (run_dir, encoder)."""
    torch.manual_seed(seed)
    enc = TaskEncoder(EncoderConfig(obs_dim=obs_dim, token_dim=token_dim)).eval()
    perturb_stats(enc, seed + 100)
    info = EncoderInfo(bfm_sha256=sha256_file(bfm_path), skill=skill, env_steps=1234, **info_extra)
    save_encoder(enc, root / "checkpoints" / "best.safetensors", info=info)
    return root, enc


def rehash_skill(bundle, name: str) -> None:
    """After a test edits a skill.json on purpose, fix manifest.json's skill_sha256 so that only the checks
    behind the hash are left to catch the edit."""
    import json

    from tt_deploy.models.checkpoints import sha256_file
    from tt_deploy.runtime import manifest as mf

    data = json.loads((bundle / mf.MANIFEST_FILE).read_text())
    data["skill_sha256"][name] = sha256_file(mf.content_dir(bundle) / mf.skill_dir(name) / mf.SKILL_FILE)
    (bundle / mf.MANIFEST_FILE).write_text(json.dumps(data))


SHIPPED_DEMO_SKILLS = ("reach", "direction", "steering", "strike")  # `ttdeploy demo`'s bundle, in its order


def export_shipped(bundle, skills=SHIPPED_DEMO_SKILLS):
    """Export the package's trained skills into `bundle` the way `ttdeploy demo` does: the embedded BFM and
    each skill's shipped run dir, passed as an absolute path (tt_deploy/skills/<name>). Default skill: the first."""
    from tt_deploy.demo import SHIPPED_RUNS
    from tt_deploy.export.bundle import export_skill

    for skill in skills:
        export_skill(skill, bundle_dir=bundle, run_dir=SHIPPED_RUNS / skill)
    return bundle


@pytest.fixture(scope="session")
def shipped_bundle(tmp_path_factory):
    """A demo-like bundle of the four shipped trained skills (each with its prior prompt; strike with its
    scene object). Read-only for tests: copy it before editing."""
    return export_shipped(tmp_path_factory.mktemp("shipped") / "deploy")


def restamp_graph(bundle, rel: str, edit) -> None:
    """Rewrite the metadata_props of graph `rel` (version-relative) of a bundle copy with `edit(dict) -> dict`,
    then fix every hash that names the file (manifest graphs, skill.json graphs, skill_sha256), so only the
    checks behind the hashes are left to catch the edit."""
    import json

    import onnx

    from tt_deploy.models.checkpoints import sha256_file
    from tt_deploy.runtime import manifest as mf

    content = mf.content_dir(bundle)
    model = onnx.load(str(content / rel))
    meta = edit({p.key: p.value for p in model.metadata_props})
    del model.metadata_props[:]
    for k, v in sorted(meta.items()):
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(content / rel))
    data = json.loads((bundle / mf.MANIFEST_FILE).read_text())
    (spec,) = [g for g in data["graphs"] if g["path"] == rel]
    spec["sha256"] = sha256_file(content / rel)
    (bundle / mf.MANIFEST_FILE).write_text(json.dumps(data))
    if spec["skill"] is not None:
        sk_path = content / mf.skill_dir(spec["skill"]) / mf.SKILL_FILE
        sk = json.loads(sk_path.read_text())
        sk["graphs"][rel] = spec["sha256"]
        sk_path.write_text(json.dumps(sk))
        rehash_skill(bundle, spec["skill"])
