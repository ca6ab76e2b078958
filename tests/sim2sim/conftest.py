"""Fixtures: a freshly exported reach bundle on the embedded default BFM, and an adversarial copy
whose graphs no longer compute what its skill.json says they were exported from."""

from __future__ import annotations

import json
import shutil

import pytest
from bundle_helpers import rehash_skill


@pytest.fixture(scope="session")
def reach_bundle(tmp_path_factory):
    from tt_deploy.export.bundle import export_skill

    return export_skill("reach", bundle_dir=tmp_path_factory.mktemp("s2s") / "deploy", seed=0)


@pytest.fixture
def swapped_bundle(reach_bundle, tmp_path):
    """The reach bundle with its encoder swapped for a different seed's: skill.json now records
    encoder seed 1 (and that encoder's weight hash), so the reference is rebuilt from seed 1 while
    the runtime still runs the seed-0 encoder graphs. All file hashes stay consistent, so only a
    behavioural check can catch it."""
    from tt_deploy.export.bundle import build_encoder
    from tt_deploy.export.reference import reference_bfm
    from tt_deploy.runtime import manifest as mf

    bundle = tmp_path / "swapped"
    shutil.copytree(reach_bundle, bundle)
    path = mf.content_dir(bundle) / "skills" / "reach" / "skill.json"
    data = json.loads(path.read_text())
    bfm = reference_bfm(mf.read_manifest(bundle))
    _, _, source, sha, _ = build_encoder("reach", None, bfm, data["bfm_sha256"], 1, data["task_obs_dim"])
    assert sha != data["encoder_weights_sha256"]
    data.update(encoder_source=source, encoder_weights_sha256=sha)
    path.write_text(json.dumps(data, indent=1))
    rehash_skill(bundle, "reach")
    return bundle
