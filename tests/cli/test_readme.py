"""The README's set-up commands stay true: .ci/run runs the README's test command verbatim, and
every `ttdeploy` verb the README's command table names exists."""

import re
from pathlib import Path

from typer.testing import CliRunner

from tt_deploy.cli import _register, app

ROOT = Path(__file__).resolve().parents[2]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert blocks[0] == 'pip install torch==2.13.0 -e ".[train]" && ttdeploy demo'  # [train]: torch, MuJoCo
    test_cmd = blocks[1]
    assert "pytest" in test_cmd
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_verb_in_the_readme_exists():
    _register()
    verbs = set(re.findall(r"\| `ttdeploy ([a-z0-9-]+)", (ROOT / "README.md").read_text()))
    assert {"demo", "export", "verify", "bench", "sim2sim", "train", "pretrain"} <= verbs
    runner = CliRunner()
    for verb in verbs:
        res = runner.invoke(app, [verb, "--help"])
        assert res.exit_code == 0, f"ttdeploy {verb} --help failed: {res.output}"
