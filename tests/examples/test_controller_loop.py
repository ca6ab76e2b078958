"""examples/controller_loop.py runs without torch and docs/embedding.md shows exactly that file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tt_deploy.export.bundle import export_skill

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "controller_loop.py"
DOC = ROOT / "docs" / "embedding.md"
NO_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; "  # `import torch` now raises ImportError
    "sys.argv = ['controller_loop.py', *sys.argv[1:]]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctrl") / "deploy"
    for skill in ("reach", "steering"):
        export_skill(skill, bundle_dir=root)
    return root


def test_example_runs_without_torch_switches_and_counts_deadlines(bundle):
    args = ["--bundle", str(bundle), "--seconds", "2", "--no-realtime", "--switch-at", "1"]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], cwd=EXAMPLE.parent, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fields = dict(kv.split("=", 1) for kv in proc.stdout.split())
    assert fields["ticks"] == "60" and fields["final_skill"] == "steering"
    assert int(fields["deadline_misses"]) >= 0 and float(fields["tick_p50_us"]) > 0


def test_doc_listing_is_the_example_file():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/embedding.md has no python code block"
    assert blocks[0] == EXAMPLE.read_text(), "docs/embedding.md drifted from examples/controller_loop.py"
