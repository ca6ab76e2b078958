"""Goal presets: the ranges a task draws its goals from, `reference` (the paper's) or `bfm` (inside the BFM).

`reference` is the Task Tokens release's ranges (docs/tasks.md); use it for an imported MaskedMimic
checkpoint. `bfm` keeps goals inside what the frozen BFM was measured to do on its model card
(`evaluate-bfm --json`, kept beside the checkpoint as `<name>.abilities.json`), by fixed rules that
are not tuned per run:

- direction / steering: speeds U(v/2, v) with v the card's walk-row mean progress (m/s) at its 1 m/s
  command; fresh directions within +-90 deg of the current heading (the walk row's command cone);
- reach: right-hand targets from the card's hand-row envelope (tasks/reach.py HAND_ROW_*);
- strike: the pillar 0.5 m to 6 s of walking at v away (near half of the resets within 1.5 m);
- long jump: the jump line 6 s of walking at v ahead, the goal 10 m beyond it.

The preset and its resolved ranges are recorded in run.json, skill.json and the results tables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.hashing import portable_path, sha256_file
from tt_deploy.tasks.direction import HeadingGoalConfig
from tt_deploy.tasks.registry import resolve_task_name

PRESETS = ("reference", "bfm")
WALK_SECONDS = 6.0  # s of walking at the card's speed that a strike target / jump line may be away (bfm)


def abilities_path(bfm_path: str | Path) -> Path:
    """Where a checkpoint's measured abilities live: beside it, `<stem>.abilities.json`."""
    p = Path(bfm_path)
    return p.with_name(p.stem + ".abilities.json")


def walk_speed(abilities: dict) -> float:
    """The walk row's mean progress (m/s) on the nominal condition of an `evaluate-bfm --json` document."""
    for row in abilities.get("abilities", []):
        if row.get("ability", "").startswith("walk") and row.get("condition") == "nominal":
            v = (row.get("metrics") or {}).get("mean_progress_m_s")
            if isinstance(v, (int, float)) and v > 0:
                return float(v)
    raise InputError("the abilities file has no nominal walk row with mean_progress_m_s: regenerate it with "
                     "`ttdeploy evaluate-bfm --json <bfm>.abilities.json`")


def load_abilities(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--goals bfm needs the BFM's measured abilities at {p}; write them with "
                         f"`ttdeploy evaluate-bfm --bfm <checkpoint> --json {p}` or use --goals reference")
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"abilities file {p} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(f"abilities file {p}: expected a JSON object from `evaluate-bfm --json`")
    return doc


def goal_preset(preset: str, skill: str, abilities_file: str | Path | None = None) -> tuple[dict, dict]:
    """(task constructor kwargs, JSON record) of `preset` for `skill`."""
    if preset not in PRESETS:
        raise UnknownNameError("goal preset", preset, PRESETS)
    skill = resolve_task_name(skill)
    if preset == "reference":
        return {}, {"preset": "reference"}
    if abilities_file is None:
        raise InputError("--goals bfm needs the BFM's abilities file")
    doc = load_abilities(abilities_file)
    v = walk_speed(doc)
    record = {"preset": "bfm", "abilities": portable_path(abilities_file), "abilities_sha256": sha256_file(abilities_file),
              "walk_progress_m_s": round(v, 4)}
    if skill in ("direction", "steering"):
        goals = HeadingGoalConfig(speed_range=(round(v / 2, 3), round(v, 3)), fresh_cone=float(np.pi / 2))
        kwargs, ranges = {"goals": goals}, dataclasses.asdict(goals)
    elif skill == "reach":
        from tt_deploy.tasks import reach

        kwargs = {"targets": "hand_row"}
        ranges = {"targets": "hand_row", "radius_m": reach.HAND_ROW_RADIUS, "angle_rad": reach.HAND_ROW_ANGLE,
                  "height_m": reach.HAND_ROW_HEIGHT, "side_offset_m": reach.HAND_ROW_SIDE_OFFSET}
    elif skill == "strike":
        far = max(1.5, round(v * WALK_SECONDS, 2))
        kwargs = ranges = {"dist_range": (0.5, far), "near_dist": 1.5}
    else:  # long_jump
        line = round(v * WALK_SECONDS, 2)
        kwargs = ranges = {"line_dist": line, "goal_dist": line + 10.0}
    return kwargs, {**record, "ranges": ranges}


def task_kwargs_from_record(skill: str, record: dict | None) -> dict:
    """Task constructor kwargs back from a recorded preset (run.json / skill.json `goals`); {} = reference."""
    if not record or record.get("preset") in (None, "reference"):
        return {}
    ranges = record.get("ranges")
    if record.get("preset") != "bfm" or not isinstance(ranges, dict):
        raise InputError(f"unknown goal record {record!r}: expected a preset of {PRESETS} with its ranges")
    skill = resolve_task_name(skill)
    if skill in ("direction", "steering"):
        fields = {f.name for f in dataclasses.fields(HeadingGoalConfig)}
        return {"goals": HeadingGoalConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                              for k, v in ranges.items() if k in fields})}
    if skill == "reach":
        return {"targets": ranges.get("targets", "box")}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in ranges.items()}


def check_goal_record(skill: str, record: dict | None, bfm_path: str | Path | None) -> tuple[int, str] | None:
    """Compare a trained skill's `bfm` goal record (run.json / skill.json `goals`) with the abilities file
    beside its BFM now: (logging level, message) when the file is not the one it records, else None.

    The record names the file the skill was trained against (its sha256) and is never rewritten. A file
    changed since only in fields that set no goals (the model card's recipe text, the file's own path, an
    `evaluation` block) gives INFO: the recorded goals are what this file sets too. A change that would set
    other goal ranges gives WARNING, naming both hashes and the ranges that differ.
    """
    if not record or record.get("preset") != "bfm" or bfm_path is None:
        return None
    current = abilities_path(bfm_path)
    if not current.is_file():
        return None
    recorded, now = record.get("abilities_sha256"), sha256_file(current)
    if recorded == now:
        return None
    head = (f"skill {skill!r} was trained against the abilities file with sha256 {recorded} (its `goals` "
            f"record); {portable_path(current)} beside the BFM now has sha256 {now}")
    try:
        _, fresh = goal_preset("bfm", skill, current)
    except InputError as e:
        return logging.WARNING, f"{head}, from which no goals can be derived ({e}); the recorded goals stand"
    old = json.loads(json.dumps(record.get("ranges")))  # tuples -> lists, as the record stores them
    new = json.loads(json.dumps(fresh["ranges"]))
    if old == new:
        return logging.INFO, (f"{head}: the goal ranges it sets are the recorded ones (only fields that set no "
                              "goals differ), so the skill's goals still match its BFM's abilities")
    keys = sorted(set(old) | set(new)) if isinstance(old, dict) else sorted(new)
    changed = {k: {"recorded": (old or {}).get(k) if isinstance(old, dict) else None, "now": new.get(k)}
               for k in keys if not isinstance(old, dict) or old.get(k) != new.get(k)}
    return logging.WARNING, (f"{head}, from which the `bfm` preset now derives other goal ranges: {changed}. "
                             "The skill keeps the goals it was trained on (skill.json `goals`); retrain it to "
                             "train on the new ones")
