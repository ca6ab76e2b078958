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


def _runtime_snippet() -> tuple[str, list[str]]:
    """(the code block of docs/bundle.md's "Runtime" section, the lines of the output block after it)."""
    import re

    section = DOC.read_text().split("\n## Runtime\n", 1)[1]
    m = re.search(r"```python\n(.*?)```\n[^\n]*\n```\n(.*?)```", section, flags=re.S)
    assert m, "docs/bundle.md's Runtime section lost its snippet or its output block"
    return m.group(1), m.group(2).splitlines()


def test_runtime_snippet_runs_as_written_on_the_shipped_trained_skills(shipped_bundle):
    """Issue #36: the snippet fed no prior prompt, and every shipped trained skill refuses such a call. Run it
    as written (only its bundle path replaced, torch made unimportable) on the demo's bundle of trained skills
    (reach and steering among them, reach the default) and compare with the output the doc shows."""
    import subprocess
    import sys

    code, documented = _runtime_snippet()
    assert '"/tmp/docdemo"' in code
    code = code.replace('"/tmp/docdemo"', repr(str(shipped_bundle)))
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None\n" + code],
                          cwd=shipped_bundle.parent, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.splitlines()
    backend = got[0].split(" ", 1)[0]  # `auto` may pick a GPU provider elsewhere; the doc shows the CPU run
    assert got == [documented[0].replace("ort-cpu", backend, 1), *documented[1:]]
