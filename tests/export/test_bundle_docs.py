"""docs/bundle.md lists every manifest field (the tables are generated from the dataclasses)."""

from pathlib import Path

from tt_deploy.runtime import manifest as mf

DOC = Path(__file__).parents[2] / "docs" / "bundle.md"


def test_every_manifest_field_is_documented():
    text = DOC.read_text()
    classes = (mf.BundleManifest, mf.BFMInfo, mf.TokenGroupSpec, mf.GraphSpec, mf.TensorSpec, mf.ToolVersions,
               mf.SkillManifest, mf.EncoderSpec, mf.PriorSpec)  # fmt: skip
    missing = [f"{c.__name__}.{n}" for c in classes for n, _, _ in mf.field_table(c) if f"| `{n}` |" not in text]
    assert not missing, f"docs/bundle.md misses {missing}; regenerate the tables with manifest.field_table"
