"""Ship a trained run as the package's skill: tt_deploy/skills/<skill>/ gets the run's run.json, log.csv
and LAST encoder (the one its reported last evaluation measured), plus the prior-only run.json of the
same evaluation seed as prior_only.json (what `ttdeploy demo` prints beside it).

    python scripts/ship_skill.py results/bfm/task-token/seed0/reach results/bfm/prior-only/seed0/reach
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from scrub_machine_paths import scrub

from tt_deploy.atomic import atomic_write_text
from tt_deploy.demo import PRIOR_ONLY_FILE, SHIPPED_RUNS
from tt_deploy.hashing import strip_checkout_paths
from tt_deploy.models.checkpoints import recipe_sidecar


def _copy_record(src: Path, dest: Path) -> None:
    """A run record without the training machine's checkout path (package files stay named from `tt_deploy/`)
    and with the BFM's recipe named by its sidecar, not by the checkpoint's free-text lab log."""
    meta = json.loads(strip_checkout_paths(src.read_text()))
    source = meta.get("bfm_source") or {}
    if source.get("path"):
        sidecar = recipe_sidecar(Path(__file__).parents[1] / source["path"])
        if sidecar.is_file():
            source["recipe"] = json.loads(sidecar.read_text())["name"]
    atomic_write_text(dest, json.dumps(meta, indent=2) + "\n")


def main(run: Path, prior_only: Path) -> Path:
    meta = json.loads((run / "run.json").read_text())
    skill = meta["config"]["skill"]
    if json.loads((prior_only / "run.json").read_text())["config"]["skill"] != skill:
        raise SystemExit(f"{prior_only} is not a {skill} run")
    dest = SHIPPED_RUNS / skill
    tmp = dest.with_name(f".{skill}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "checkpoints").mkdir(parents=True)
    _copy_record(run / "run.json", tmp / "run.json")
    shutil.copy2(run / "log.csv", tmp / "log.csv")
    shutil.copy2(run / "checkpoints" / "last.safetensors", tmp / "checkpoints" / "last.safetensors")
    scrub(tmp / "checkpoints" / "last.safetensors")  # its metadata records the goals' abilities file
    _copy_record(prior_only / "run.json", tmp / PRIOR_ONLY_FILE)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(main(Path(sys.argv[1]), Path(sys.argv[2])))
