"""The contract every bundle graph carries in its own ONNX `metadata_props`, so a graph alone describes itself.

Why: a graph copied out of its bundle (onto a robot, into another tool) otherwise says nothing of how its
actions move the joints or which token layout it reads. So export stamps the contract essentials of the
manifest (and, on a skill's graphs, of its skill.json) into each graph, `ttdeploy inspect GRAPH.onnx` prints
them, and `ttdeploy verify` checks they still equal what the manifest and skill.json say.

One place for each fact: the keys, how a value is written, and the contract hash are defined here and used by
the exporter (export/bundle.py), verify (runtime/parity.py, export/verify.py), the runtime's load-time check
(session.check_metadata) and inspect. Standard library only (no torch, no numpy).

Values are strings: TEXT_KEYS verbatim (None as ""), every other key canonical JSON (`canonical_json`; None
as `null`). A graph cannot carry the manifest file's hash (the manifest hashes the graph), so it carries
CONTRACT_SHA_KEY: the sha256 of the canonical JSON of its contract keys' string values, a one-value check
that two graphs share the contract.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tt_deploy.errors import BundleError
from tt_deploy.runtime.manifest import SCHEMA, BundleManifest, GraphSpec, to_dict

# identity keys: every graph, checked at load by session.check_metadata
SCHEMA_KEY, ROLE_KEY, BFM_KEY = "tt-deploy.schema", "tt-deploy.role", "tt-deploy.bfm_sha256"
SKILL_KEY = "tt-deploy.skill"  # identity and contract: "" on the shared BFM graphs
CONTRACT_SHA_KEY = "tt-deploy.contract_sha256"

# key -> what it holds (docs/bundle.md's table); on every graph
BUNDLE_KEYS: dict[str, str] = {
    "tt-deploy.joint_names": "manifest `joint_names`: the action order (69 names)",
    "tt-deploy.kp": "manifest `actuation.kp`: N m / rad per joint (null: exported without MuJoCo)",
    "tt-deploy.kd": "manifest `actuation.kd`: N m s / rad per joint (null: exported without MuJoCo)",
    "tt-deploy.default_joint_pos": "manifest `actuation.reset_joint_pos`: rad per joint, the reset pose",
    "tt-deploy.action_offset": "manifest `pd_offset`: rad per joint (PD target = offset + scale * action)",
    "tt-deploy.action_scale": "manifest `pd_scale`: rad per joint",
    "tt-deploy.action_clamp": "manifest `action_clamp`: the graph's output is already in [-clamp, clamp]",
    "tt-deploy.action_transform": "manifest `actuation.pd_form`, text: action -> PD target -> torque",
    "tt-deploy.control_dt": "manifest `control_dt`: s per policy step",
    "tt-deploy.token_layout": "manifest `token_dim`, `token_groups`: {token_dim, groups: [TokenGroupSpec]}",
}
# on a skill's graphs only (encoder, fused and their reduced-precision copies); skill.json's fields
SKILL_KEYS: dict[str, str] = {
    SKILL_KEY: "skill.json `name`, text (also an identity key: \"\" on the shared BFM graphs)",
    "tt-deploy.prior_name": "skill.json `task_prior.name`, text (\"\": trained without a prior prompt)",
    "tt-deploy.prior_params": "skill.json `task_prior.params`: make_prior's keyword arguments (null: none)",
    "tt-deploy.prior_goal_keys": "skill.json `task_prior.goal_keys`: the goal entries it reads (null: none)",
}
PER_JOINT_KEYS = ("tt-deploy.kp", "tt-deploy.kd", "tt-deploy.default_joint_pos", "tt-deploy.action_offset",
                  "tt-deploy.action_scale")  # (69,) lists in joint_names order: inspect's joint table
TEXT_KEYS = frozenset({SKILL_KEY, "tt-deploy.action_transform", "tt-deploy.prior_name"})
CONTRACT_KEYS = (*BUNDLE_KEYS, *SKILL_KEYS, CONTRACT_SHA_KEY)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value: sorted keys, no whitespace, ASCII, no NaN (equal values, equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def encode(key: str, value: Any) -> str:
    """A contract value as its metadata string (TEXT_KEYS verbatim, None as ""; others canonical JSON)."""
    if key in TEXT_KEYS:
        return "" if value is None else str(value)
    return canonical_json(to_dict(value))


def decode(key: str, text: str) -> Any:
    """A metadata string back to its value (inspect); TEXT_KEYS stay text, text that is not JSON stays text."""
    if key in TEXT_KEYS or key not in CONTRACT_KEYS or key == CONTRACT_SHA_KEY:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def bundle_contract(manifest: BundleManifest) -> dict[str, str]:
    """The skill-independent contract keys of every graph of `manifest` (also the manifest an export is about to
    write: only its graph-independent fields are read)."""
    act = manifest.actuation
    values = {
        "tt-deploy.joint_names": manifest.joint_names,
        "tt-deploy.kp": act and act.kp,
        "tt-deploy.kd": act and act.kd,
        "tt-deploy.default_joint_pos": act and act.reset_joint_pos,
        "tt-deploy.action_offset": manifest.pd_offset,
        "tt-deploy.action_scale": manifest.pd_scale,
        "tt-deploy.action_clamp": manifest.action_clamp,
        "tt-deploy.action_transform": act and act.pd_form,
        "tt-deploy.control_dt": manifest.control_dt,
        "tt-deploy.token_layout": {"token_dim": manifest.token_dim, "groups": manifest.token_groups},
    }
    return {k: encode(k, values[k]) for k in BUNDLE_KEYS}


def skill_contract(name: str, task_prior: dict | None) -> dict[str, str]:
    """The contract keys a skill's graphs add: its name and its prior prompt (skill.json `task_prior`)."""
    prior = task_prior or {}
    values = {SKILL_KEY: name, "tt-deploy.prior_name": prior.get("name"),
              "tt-deploy.prior_params": prior.get("params"), "tt-deploy.prior_goal_keys": prior.get("goal_keys")}
    return {k: encode(k, values[k]) for k in SKILL_KEYS}


def contract_sha256(contract: dict[str, str]) -> str:
    """sha256 (hex) of the canonical JSON of a graph's contract keys' string values (CONTRACT_SHA_KEY excluded)."""
    body = {k: v for k, v in contract.items() if k in CONTRACT_KEYS and k != CONTRACT_SHA_KEY}
    return hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


def expected_metadata(manifest: BundleManifest, role: str, skill: str | None,
                      task_prior: dict | None) -> dict[str, str]:
    """Every tt-deploy key a graph of `role` (of `skill`; None: a shared BFM graph) must carry: what export stamps
    and what verify expects. A shared graph's contract has its skill key too (""), so the hash covers every
    contract key any graph carries."""
    own = skill_contract(skill, task_prior) if skill is not None else {SKILL_KEY: ""}
    contract = bundle_contract(manifest) | own
    identity = {SCHEMA_KEY: SCHEMA, ROLE_KEY: role, BFM_KEY: manifest.bfm.sha256}
    return {**identity, **contract, CONTRACT_SHA_KEY: contract_sha256(contract)}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A graph file's metadata_props (onnx, no ONNX Runtime session: no optimisation pass to pay for)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a damaged file
        raise BundleError(f"{path} is not a readable ONNX graph ({exc}); re-export the bundle") from exc
    return {p.key: p.value for p in model.metadata_props}


def carries_contract(meta: dict[str, str]) -> bool:
    """Whether a graph was stamped with any contract key (graphs exported before this was stamped carry none)."""
    return any(k in meta for k in BUNDLE_KEYS) or CONTRACT_SHA_KEY in meta


def differing_keys(meta: dict[str, str], want: dict[str, str]) -> list[str]:
    """The keys of `want` that `meta` lacks or holds another value for, sorted."""
    return sorted(k for k, v in want.items() if meta.get(k) != v)


def check_graphs(content: Path, manifest: BundleManifest, graphs: Iterable[GraphSpec],
                 task_prior: Callable[[str], dict | None], hint: str) -> list[str]:
    """Compare each graph's metadata with what `manifest` (and `task_prior(skill)`, skill.json's) says.

    Returns the paths of graphs that carry no contract (exported before it was stamped: they still load);
    BundleError naming the first graph that carries one which differs, and its keys, then `hint`."""
    legacy = []
    for g in graphs:
        meta = read_metadata(content / g.path)
        if not carries_contract(meta):
            legacy.append(g.path)
            continue
        prior = task_prior(g.skill) if g.skill is not None else None
        want = expected_metadata(manifest, g.role, g.skill, prior)
        keys = differing_keys(meta, want)
        if keys:
            raise BundleError(f"{content / g.path}: metadata {', '.join(keys)} differ from what the manifest and "
                              f"skill.json say; {hint}")  # fmt: skip
    return legacy


def verify_contracts(bundle: str | os.PathLike, manifest: BundleManifest, skills: Iterable[str]) -> list[str]:
    """verify's check: the shared graphs and every graph of `skills` carry the manifest's and skill.json's contract
    (BundleError otherwise). Returns notes (one line each) for graphs that carry no contract at all."""
    from tt_deploy.runtime.manifest import content_dir, read_skill

    names = set(skills)
    priors = {n: read_skill(bundle, n, manifest).task_prior for n in names}
    graphs = [g for g in manifest.graphs if g.skill is None or g.skill in names]
    legacy = check_graphs(content_dir(bundle, manifest), manifest, graphs, priors.__getitem__,
                          "the graph was edited or belongs to another bundle - re-export it")  # fmt: skip
    if not legacy:
        return []
    shown = ", ".join(legacy[:3]) + (f" and {len(legacy) - 3} more" if len(legacy) > 3 else "")
    return [f"{len(legacy)} graph(s) carry no contract metadata ({shown}): exported before tt-deploy stamped it; "
            "they still load, but re-export the bundle so each graph describes itself"]


__all__ = ["BUNDLE_KEYS", "SKILL_KEYS", "PER_JOINT_KEYS", "TEXT_KEYS", "CONTRACT_KEYS", "CONTRACT_SHA_KEY",
           "canonical_json", "encode", "decode", "bundle_contract", "skill_contract", "contract_sha256", "expected_metadata",
           "read_metadata", "carries_contract", "differing_keys", "check_graphs", "verify_contracts"]
