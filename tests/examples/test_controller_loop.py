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


def run_example(bundle, *args: str) -> dict[str, str]:
    """Run the example with `import torch` made to raise; its key=value output as a dict."""
    argv = ["--bundle", str(bundle), "--no-realtime", *args]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], cwd=EXAMPLE.parent, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(kv.split("=", 1) for kv in proc.stdout.split())


def test_example_runs_without_torch_switches_and_counts_deadlines(bundle):
    fields = run_example(bundle, "--seconds", "2", "--switch-at", "1")
    assert fields["ticks"] == "60" and fields["start_skill"] == "reach" and fields["final_skill"] == "steering"
    assert fields["switch"] == "reach->steering" and fields["at_s"] == "1.00"
    assert int(fields["deadline_misses"]) >= 0 and float(fields["tick_p50_us"]) > 0


def test_example_runs_with_the_safety_layer(shipped_bundle):
    """--safety: the PD targets go through the SafetyLayer (soft start, limits, watchdog); a healthy run ends in
    the policy mode with no fault, the humanoid up, across a skill switch."""
    fields = run_example(shipped_bundle, "--seconds", "3", "--switch-at", "2", "--safety")
    assert fields["safety_mode"] == "policy" and fields["faults"] == "0" and fields["final_skill"] == "steering"
    assert float(fields["root_height_m"]) > 0.5


def test_example_runs_the_demo_bundle_and_switches_away_from_its_default_skill(shipped_bundle):
    """The four shipped trained skills (each fed its prior prompt; strike needs its pillar in the scene), exported
    reach first: the runtime starts on the default skill `reach`, not the sorted first (`direction`), and the
    switch goes to another skill. Issue #36: the example crashed here (no 'strike_target') and switched
    reach -> reach (skills[1])."""
    fields = run_example(shipped_bundle, "--seconds", "0.5", "--switch-at", "0.2")
    assert fields["skills"] == "direction,reach,steering,strike" and fields["start_skill"] == "reach"
    assert fields["switch"] == "reach->steering" and fields["final_skill"] == "steering"
    assert fields["ticks"] == "15" and float(fields["root_height_m"]) > 0.5
    fields = run_example(shipped_bundle, "--seconds", "0.5", "--switch-at", "0.2", "--start-skill", "steering")
    assert fields["switch"] == "steering->strike" and fields["final_skill"] == "strike"  # strike active, its prior fed


def test_doc_listing_is_the_example_file():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/embedding.md has no python code block"
    assert blocks[0] == EXAMPLE.read_text(), "docs/embedding.md drifted from examples/controller_loop.py"
