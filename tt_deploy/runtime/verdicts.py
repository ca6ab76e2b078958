"""What a recorded verdict must show before the runtime trusts it: the graphs it measured, and enough of them.

Why: a verdict in skill.json (`precision_gates`, `sim2sim`, `parity`) was once a bare `passed: true`. One
measured on graphs that a re-export replaced mid-run landed on the new graphs; a forged one unlocked int8.
Now every verdict carries `evidence` (`measured_evidence`, taken before the measurement starts):
- the bundle version measured and that version's skill.json sha256 (provenance);
- the sha256 of every graph of the skill, of the BFM, and of the encoder weights (binding);
- the tool versions that ran it.
Recording is a compare-and-swap against the version measured (export/bundle.py `record_results`),
and the runtime opens a reduced precision only where `gate_problems` finds none. A gate must also clear the
documented minimum (MIN_GATE_EVIDENCE, docs/bundle.md): anyone who can write the bundle can still write any
JSON, so these checks stop stale and thin verdicts, not a forger with write access; signing would need a key
that the robot trusts, which the bundle does not carry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata

from tt_deploy.runtime import manifest as mf

EVIDENCE_TOOLS = ("tt-deploy", "onnxruntime", "numpy", "mujoco", "openvino", "tensorrt")


@dataclass(frozen=True)
class GateMinimum:
    """The least closed-loop evidence that unlocks a reduced precision: at least the default grid's size
    (13 cells, nominal among them; `ttdeploy sim2sim`'s default grid), each with `episodes` of `seconds`."""

    cells: int = 13
    required_cell: str = "nominal"
    episodes: int = 8
    episode_seconds: float = 5.0


MIN_GATE_EVIDENCE = GateMinimum()


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools a measurement can run on (absent ones left out)."""
    out = {}
    for name in EVIDENCE_TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _binding(sk: mf.SkillManifest, manifest: mf.BundleManifest) -> dict:
    return {"graphs": dict(sorted(sk.graphs.items())), "bfm_sha256": manifest.bfm.sha256,
            "encoder_weights_sha256": sk.encoder_weights_sha256}  # fmt: skip


def measured_evidence(bundle_dir: str | os.PathLike, skill: str) -> dict:
    """The evidence block of a verdict about `skill`, read from the bundle version current now."""
    manifest = mf.read_manifest(bundle_dir)
    sk = mf.read_skill(bundle_dir, skill, manifest)
    skill_sha = (manifest.skill_sha256 or {}).get(skill) or mf.sha256_file(
        mf.content_dir(bundle_dir, manifest) / mf.skill_dir(skill) / mf.SKILL_FILE)
    return {"bundle_version": manifest.content, "skill_json_sha256": skill_sha, **_binding(sk, manifest),
            "tools": tool_versions()}  # fmt: skip


def binding_problems(verdict: dict, sk: mf.SkillManifest, manifest: mf.BundleManifest) -> list[str]:
    """Why `verdict` is not about the graphs this skill has now (empty: it is)."""
    ev = verdict.get("evidence")
    if not isinstance(ev, dict):
        return ["it names no evidence (recorded before verdicts carried graph hashes, or written by hand)"]
    want = _binding(sk, manifest)
    return [f"its {key} differ from the bundle's: it measured other graphs" for key in want if ev.get(key) != want[key]]


def minimum_problems(verdict: dict, minimum: GateMinimum = MIN_GATE_EVIDENCE) -> list[str]:
    """Why `verdict` measured less than `minimum` (empty: enough)."""
    out = []
    names = verdict.get("cell_names")
    if not isinstance(names, list) or len(names) < minimum.cells or minimum.required_cell not in names:
        out.append(f"it ran {len(names) if isinstance(names, list) else 'unnamed'} cells; at least {minimum.cells} "
                   f"with {minimum.required_cell!r} are needed (the default grid)")  # fmt: skip
    episodes, seconds = verdict.get("episodes"), verdict.get("episode_seconds")
    if not isinstance(episodes, int) or episodes < minimum.episodes:
        out.append(f"{episodes} episodes per cell; at least {minimum.episodes} are needed")
    if not isinstance(seconds, (int, float)) or seconds < minimum.episode_seconds:
        out.append(f"{seconds} s episodes; at least {minimum.episode_seconds:g} s are needed")
    return out


def gate_problems(gate: dict | None, sk: mf.SkillManifest, manifest: mf.BundleManifest) -> list[str]:
    """Why a reduced-precision gate does not unlock this skill's graphs (empty: it does)."""
    if not isinstance(gate, dict):
        return ["it has none"]
    if gate.get("passed") is not True:
        return ["it failed"]
    return binding_problems(gate, sk, manifest) + minimum_problems(gate)

