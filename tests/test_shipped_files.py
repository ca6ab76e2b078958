"""Shipped files (package data, docs) carry no machine paths, and every third-party import is declared."""

from __future__ import annotations

import ast
import re
import struct
import sys
from pathlib import Path

import tomllib

from tt_deploy.hashing import strip_checkout_paths

ROOT = Path(__file__).parents[1]
MACHINE_PATH = re.compile(r'["\s\'](/(?:work|home|root|tmp|Users|private|var)/[^"\s\\]*)')
# import name -> distribution name, where they differ; optional extras and tools that pip cannot install
DIST = {"yaml": "pyyaml", "cuda": "cuda-python", "tensorrt": "tensorrt-cu12", "onnxruntime": "onnxruntime",
        "warp": "warp-lang"}
NOT_ON_PIP = {"isaacgym"}  # NVIDIA's Isaac Gym preview ships as a tarball (docs/isaacgym.md)
WITH_FALLBACK = {"psutil"}  # bench/latency.py reads /proc/self/statm without it


def _text_of(path: Path) -> str:
    if path.suffix == ".safetensors":
        data = path.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        return data[8 : 8 + n].decode()
    return path.read_text(errors="replace")


def test_shipped_files_carry_no_machine_paths():
    records = [p for p in (ROOT / "tt_deploy").rglob("*") if p.suffix in (".json", ".csv", ".safetensors")]
    records += list((ROOT / "docs").rglob("*.json"))
    found = {p.relative_to(ROOT).as_posix(): m for p in records if (m := MACHINE_PATH.findall(_text_of(p)))}
    # prose may show example commands (`--bundle /tmp/vb`), never a checkout's path to a package file
    prose = [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]
    found |= {p.relative_to(ROOT).as_posix(): "checkout path" for p in prose
              if strip_checkout_paths(t := p.read_text()) != t}  # fmt: skip
    assert not found, f"machine paths in shipped files (python scripts/scrub_machine_paths.py): {found}"


def test_every_third_party_import_is_declared():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = meta["dependencies"] + [d for extra in meta["optional-dependencies"].values() for d in extra]
    declared = {re.split(r"[<>=!\[ ;]", s, maxsplit=1)[0].lower() for s in specs}
    imported = set()
    for py in (ROOT / "tt_deploy").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"tt_deploy"} - NOT_ON_PIP - WITH_FALLBACK
    missing = sorted(m for m in third_party if DIST.get(m, m).lower().replace("_", "-") not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
