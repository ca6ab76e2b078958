"""docs/bundle.md's manifest field tables are the ones generated from the dataclasses."""

from pathlib import Path

from tt_deploy.runtime import manifest as mf

DOC = Path(__file__).parents[2] / "docs" / "bundle.md"


def test_manifest_field_tables_are_generated_from_the_dataclasses():
    text = DOC.read_text()
    assert mf.field_tables_markdown().rstrip("\n") in text, (
        "docs/bundle.md's manifest field tables are stale; run `python scripts/bundle_doc_tables.py`"
    )
    documented = {n for c in mf.DOC_CLASSES for n, _, _ in mf.field_table(getattr(mf, c))}
    assert {"content", "engines", "skills", "task_prior"} <= documented
