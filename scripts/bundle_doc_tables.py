"""Rewrite the "## Manifest fields" section of docs/bundle.md from the manifest dataclasses.

tests/export/test_bundle_docs.py fails when the section and the dataclasses disagree; run this then.
"""

from pathlib import Path

from tt_deploy.atomic import atomic_write_text
from tt_deploy.runtime.manifest import field_tables_markdown

DOC = Path(__file__).parents[1] / "docs" / "bundle.md"
HEADING = "## Manifest fields"


def main() -> None:
    text = DOC.read_text()
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    rest = "" if end == -1 else text[end:]
    atomic_write_text(DOC, text[:start] + field_tables_markdown().rstrip("\n") + "\n" + rest)
    print(f"wrote the manifest field tables of {DOC}")


if __name__ == "__main__":
    main()
