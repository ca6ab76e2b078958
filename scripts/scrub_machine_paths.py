"""Rewrite records of package files to `tt_deploy/...` in JSON/CSV files and safetensors metadata
(tensors untouched, checked), for files written before records named package files that way.

    python scripts/scrub_machine_paths.py tt_deploy/skills tt_deploy/models/weights
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.numpy import save_file

from tt_deploy.atomic import atomic_path, atomic_write_text
from tt_deploy.hashing import strip_checkout_paths


def scrub(path: Path) -> bool:
    if path.suffix in (".json", ".csv", ".md"):
        text = path.read_text()
        new = strip_checkout_paths(text)
        if new != text:
            atomic_write_text(path, new)
        return new != text
    if path.suffix == ".safetensors":
        with safe_open(path, "np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        new = {k: strip_checkout_paths(v) for k, v in meta.items()}
        if new == meta:
            return False
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=new)
            with safe_open(tmp, "np") as f:  # the weights are the same bytes
                assert all((f.get_tensor(k) == v).all() for k, v in tensors.items())
        return True
    return False


def main(roots: list[str]) -> None:
    for root in map(Path, roots):
        for p in sorted([root] if root.is_file() else root.rglob("*")):
            if p.is_file() and scrub(p):
                print(f"scrubbed {p}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["tt_deploy"])
