"""The package layering of DESIGN.md section 2, checked in fresh interpreters (imports are process-wide)."""

import subprocess
import sys

DEPLOY_PATH = ["tt_deploy.obs.inputs", "tt_deploy.obs.priors", "tt_deploy.runtime.skill_runtime",
               "tt_deploy.export.bundle", "tt_deploy.export.verify", "tt_deploy.sim2sim.harness",
               "tt_deploy.bench.latency", "tt_deploy.train.task_token", "tt_deploy.train.results", "tt_deploy.demo",
               "tt_deploy.sequence"]


def _loaded_after(imports: list[str], prelude: str = "") -> set[str]:
    code = prelude + "import sys\n" + "".join(f"import {m}\n" for m in imports) + \
        "print('\\n'.join(m for m, v in sys.modules.items() if v is not None))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_the_observation_contract_needs_neither_torch_nor_a_simulator():
    loaded = _loaded_after(["tt_deploy.obs.inputs", "tt_deploy.obs.priors", "tt_deploy.obs.prompts",
                            "tt_deploy.obs.rotations", "tt_deploy.obs.state"],
                           prelude="import sys\nsys.modules['torch'] = None\n")  # any torch import fails
    assert not any(m.startswith(("torch", "mujoco", "tt_deploy.sim.")) for m in loaded)


def test_nothing_on_the_deploy_path_imports_the_pretraining_lab():
    loaded = _loaded_after(DEPLOY_PATH)
    assert "tt_deploy.train.task_token" in loaded
    assert not any(m.startswith("tt_deploy.pretrain") for m in loaded), sorted(m for m in loaded if "pretrain" in m)


def test_the_shared_layers_know_nothing_of_the_pretraining_teachers():
    """Teachers label actions only to make the embedded BFM: they live in pretrain/ (teacher_env.py), and the
    shared layers offer a generic per-sample policy-gradient weight instead."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "tt_deploy"
    shared = ("train", "rl", "tasks", "sim", "export", "runtime", "sim2sim", "obs", "models", "bench")
    hits = [f"{p.relative_to(root)}:{i}" for pkg in shared for p in sorted((root / pkg).rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if "teacher" in line.lower()]
    assert hits == []
    assert "TeacherEnv" in (root / "pretrain" / "teacher_env.py").read_text()


def test_every_package_has_a_face():
    """A one-line-or-more docstring and an __all__ naming only what exists, so the public line is written down."""
    import ast
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "tt_deploy"
    for init in sorted(root.glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init} has no docstring"
        pkg = importlib.import_module(f"tt_deploy.{init.parent.name}")
        if init.parent.name == "cli":  # verbs register on the typer app; the package exports the app
            continue
        assert getattr(pkg, "__all__", None), f"{init} has no __all__"
        for name in pkg.__all__:
            assert hasattr(pkg, name) or (init.parent / f"{name}.py").is_file() or (init.parent / name).is_dir(), \
                f"{init}: __all__ names {name!r}, which does not exist"
