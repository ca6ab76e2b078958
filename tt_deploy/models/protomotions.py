"""Import ProtoMotions v1 MaskedMimic / Task Tokens checkpoints (`last.ckpt`) into our BFM and skills.

A v1 checkpoint is a torch file whose top-level dict holds `actor` (a state dict of
`ActorFixedSigmaVAE`), `critic`, optimiser states and counters, with a Hydra `config.yaml`
beside it. Checked against the public v1 code (docs/protomotions.md names the files):

- prior `vae_prior` = MultiOutputNetwork(trunk=TransformerWithNorm, outputs {mu, logvar});
  the trunk's token encoders are `obs_encoder` (token 0) and `extra_input_models.<key>`, each an
  MLP_WithNorm (`running_obs_norm.{mean,var,count}` + `trunk` Sequential Linear/ReLU), applied
  per token (multi-token groups are reshaped to (B*n, F) before `encode`, shared weights);
- the transformer is `seqTransEncoder.layers.N` (nn.TransformerEncoderLayer, sequence-first,
  post-norm, ReLU, dropout 0, no final norm); type_embedding_dim 0 and no positional encoding;
  output read at token 0; hidden tokens are masked as keys (input masks True = visible);
- decoder `mu_model` = MultiHeadedMLP: [normalised obs, raw terrain, MLP(z)] -> actions, where
  MLP(z) is `extra_input_models.vae_latent`; at inference z = prior mean (`vae_prior.output_models.mu`);
- a Task Tokens run adds `vae_prior.trunk.extra_input_models.inversion_obs` (the task encoder).

Token order differs (v1 sorts its extra inputs by name) but is irrelevant: without positional
or type embeddings the output at token 0 is invariant to the order of the other tokens.

Loading never unpickles arbitrary objects (`torch.load(weights_only=True)`); every actor key is
mapped or explicitly ignored, anything else fails naming the key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from tt_deploy import spec
from tt_deploy.errors import CheckpointError
from tt_deploy.models.bfm import BFM
from tt_deploy.models.checkpoints import EncoderInfo, save_bfm, save_encoder, sha256_file
from tt_deploy.models.config import BFMConfig, EncoderConfig
from tt_deploy.models.task_encoder import TaskEncoder

log = logging.getLogger(__name__)

SOURCE = "protomotions-v1"
PRIOR = "vae_prior.trunk."
TASK_KEY = "inversion_obs"  # the Task Tokens encoder: vae_prior.trunk.extra_input_models.inversion_obs
V1_DEFAULT_NUM_HEADS = 4  # opt/masked_mimic/transformer.yaml; shapes cannot tell the head count
V1_DEFAULT_CLAMP = None  # algo/ppo.yaml: obs_clamp_value: null

# The one mapping table: v1 actor-key prefix -> (our BFM key prefix, kind). Kinds:
#   normalized_mlp: <p>running_obs_norm.{mean,var,count} + <p>trunk.<i>.{weight,bias} -> <o>norm.* + <o>trunk.<i>.*
#   mlp:            <p>trunk.<i>.{weight,bias} -> <o><i>.*            (MLP_WithNorm with normalize_obs False)
#   sequential:     <p><i>.{weight,bias} -> <o><i>.*                  (a bare nn.Sequential)
#   norm:           <p>{mean,var,count} -> <o>{mean,var,count}
#   layers:         <p>N.<name> -> <o>N.<name>                       (nn.TransformerEncoderLayer names)
MAPPING: tuple[tuple[str, str, str], ...] = (
    (f"{PRIOR}obs_encoder.", "token_encoders.obs.", "normalized_mlp"),
    *(
        (f"{PRIOR}extra_input_models.{g.name}.", f"token_encoders.{g.name}.", "normalized_mlp")
        for g in spec.TOKEN_GROUPS
        if g.name != "obs"
    ),
    (f"{PRIOR}seqTransEncoder.layers.", "layers.", "layers"),
    ("vae_prior.output_models.mu.", "prior_mu.", "mlp"),
    ("mu_model.running_obs_norm.", "decoder_obs_norm.", "norm"),
    ("mu_model.extra_input_models.vae_latent.", "latent_mlp.", "mlp"),
    ("mu_model.trunk.", "decoder.", "sequential"),
    (f"{PRIOR}extra_input_models.{TASK_KEY}.", "<skill>.net.", "normalized_mlp"),
)
# v1 actor keys that carry nothing deployable: prefix -> why.
IGNORED: tuple[tuple[str, str], ...] = (
    ("vae_encoder.", "posterior encoder (training only)"),
    ("vae_prior.output_models.logvar.", "prior log-variance (inference uses z = prior mean)"),
    (f"{PRIOR}sequence_pos_encoder.pe", "positional table (no positional_encoding operation in the configs)"),
    (f"{PRIOR}output_mapping.", "trunk output MLP (output_decoder: False)"),
    (f"{PRIOR}type_embedding.", "type embedding (type_embedding_dim: 0, zero-size)"),
    ("logstd", "fixed action std (PPO exploration only)"),
)
# v1 task (env) names -> our skill names (the paper's names; OBS_SPEC.md).
V1_TASK_NAMES = {"steering": "direction", "direction_facing": "steering", "reach": "reach",
                 "strike": "strike", "long_jump": "long_jump"}  # fmt: skip
TRANSFORMER_PARAMS = (
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
    "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
)  # fmt: skip


# --- reading -------------------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's top-level dict, loaded without unpickling arbitrary objects."""
    from tt_deploy.models.safe_checkpoint import check_file

    path = check_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... all mean "not a safe torch file"
        raise CheckpointError(
            f"{path} could not be loaded with torch.load(weights_only=True) - it is not a torch checkpoint, "
            f"is truncated, or holds objects other than tensors/containers, which are never unpickled ({exc})"
        ) from exc
    if not isinstance(ckpt, Mapping) or "actor" not in ckpt:
        keys = sorted(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: expected a ProtoMotions v1 checkpoint dict with an 'actor' key, got {keys}"
        )
    actor = ckpt["actor"]
    if not isinstance(actor, Mapping) or not all(isinstance(v, torch.Tensor) for v in actor.values()):
        raise CheckpointError(f"{path}: 'actor' is not a state dict of tensors")
    return ckpt


def load_config(path: str | os.PathLike | None) -> dict:
    if path is None:
        return {}
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"config not found: {path}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path} is not valid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a Hydra config mapping, got {type(cfg).__name__}")
    return cfg


_MISSING = object()


def config_value(cfg: dict, dotted: str, default=_MISSING, _depth: int = 0):
    """cfg["a"]["b"]... following absolute `${a.b}` interpolations (Hydra saves them unresolved)."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise CheckpointError(f"config.yaml has no {dotted!r}")
            return default
        node = node[part]
    m = re.fullmatch(r"\$\{([A-Za-z_][\w.]*)\}", node) if isinstance(node, str) else None
    if m and _depth < 10:
        return config_value(cfg, m.group(1), default, _depth + 1)
    if isinstance(node, str) and "${" in node:
        raise CheckpointError(
            f"config.yaml: {dotted} = {node!r} is an interpolation this importer cannot resolve"
        )
    return node


# --- key accounting ------------------------------------------------------------------------------
class _Keys:
    """The actor state dict with bookkeeping: every key must be taken or ignored."""

    def __init__(self, actor: Mapping[str, torch.Tensor]):
        self.actor = actor
        self.used: set[str] = set()

    def take(self, key: str) -> torch.Tensor:
        if key not in self.actor:
            raise CheckpointError(f"missing key {key!r} in the v1 actor state dict")
        self.used.add(key)
        return self.actor[key]

    def under(self, prefix: str) -> list[str]:
        return sorted(k for k in self.actor if k.startswith(prefix))

    def leftover(self) -> list[str]:
        return sorted(
            k for k in self.actor if k not in self.used and not any(k.startswith(p) for p, _ in IGNORED)
        )


def _trunk(keys: _Keys, prefix: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(weight, bias)] of a Linear/activation Sequential under prefix (Linear at even indices only)."""
    idx: dict[int, set[str]] = {}
    for k in keys.under(prefix):
        rest = k[len(prefix) :]
        m = re.fullmatch(r"(\d+)\.(weight|bias)", rest)
        if not m:
            raise CheckpointError(f"unexpected key {k!r}: expected {prefix}<index>.weight/bias of a Linear")
        idx.setdefault(int(m.group(1)), set()).add(m.group(2))
    if not idx:
        raise CheckpointError(f"missing key {prefix}0.weight (no MLP under {prefix!r})")
    expected = list(range(0, 2 * len(idx), 2))
    if sorted(idx) != expected:
        bad = next(i for i in sorted(idx) if i not in expected)
        raise CheckpointError(
            f"unexpected key {prefix}{bad}.weight: v1 MLPs are Linear/ReLU Sequentials (Linear at even indices); "
            "a LayerNorm (use_layer_norm: True) or another layout is not supported"
        )
    layers = []
    for i in expected:
        w, b = keys.take(f"{prefix}{i}.weight"), keys.take(f"{prefix}{i}.bias")
        if w.dim() != 2 or b.shape != (w.shape[0],):
            raise CheckpointError(
                f"unexpected shape of {prefix}{i}.weight {tuple(w.shape)} / bias {tuple(b.shape)}"
            )
        if layers and layers[-1][0].shape[0] != w.shape[1]:
            raise CheckpointError(
                f"{prefix}{i}.weight takes {w.shape[1]} inputs, the previous layer gives {layers[-1][0].shape[0]}"
            )
        layers.append((w, b))
    return layers


def _norm(keys: _Keys, prefix: str, dim: int) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("mean", "var", "count"):
        t = keys.take(prefix + name)
        want = () if name == "count" else (dim,)
        if tuple(t.shape) != want:
            raise CheckpointError(f"{prefix}{name} has shape {tuple(t.shape)}, expected {want}")
        out[name] = t.detach().to(torch.float32)
    return out


def _put_mlp(sd: dict, ours: str, layers) -> None:
    for j, (w, b) in enumerate(layers):
        sd[f"{ours}{2 * j}.weight"] = w.detach().to(torch.float32)
        sd[f"{ours}{2 * j}.bias"] = b.detach().to(torch.float32)


def _normalized_mlp(keys: _Keys, prefix: str, ours: str, in_dim: int | None, sd: dict):
    """Map one MLP_WithNorm; returns (in_dim, hidden, out_dim)."""
    layers = _trunk(keys, prefix + "trunk.")
    fin = layers[0][0].shape[1]
    if in_dim is not None and fin != in_dim:
        raise CheckpointError(f"{prefix}trunk.0.weight takes {fin} features, our interface expects {in_dim}")
    for name, t in _norm(keys, prefix + "running_obs_norm.", fin).items():
        sd[f"{ours}norm.{name}"] = t
    _put_mlp(sd, f"{ours}trunk.", layers)
    return fin, tuple(w.shape[0] for w, _ in layers[:-1]), layers[-1][0].shape[0]


def _same(what: str, key: str, got, want) -> None:
    if got != want:
        raise CheckpointError(f"{key}: {what} is {got}, but the rest of the model has {want}")


# --- import --------------------------------------------------------------------------------------
def _skill_name(cfg: dict, skill: str | None, obs_dim: int) -> tuple[str, bool]:
    """(our skill name, current_pose) for an inversion_obs encoder of width obs_dim."""
    from tt_deploy.tasks.registry import TASKS, task_class

    from_cfg = None
    target = (
        (cfg.get("env") or {}).get("_target_") if isinstance(cfg.get("env"), dict) else None
    )  # may hold ${backbone}
    m = re.search(r"masked_mimic_inversion\.(\w+)\.", target) if isinstance(target, str) else None
    if m and m.group(1) in V1_TASK_NAMES:
        from_cfg = V1_TASK_NAMES[m.group(1)]
    name = skill or from_cfg
    if name is None:
        fits = [t for t in TASKS if obs_dim in (task_class(t).feature_dim, task_class(t).feature_dim + 6)]
        if len(fits) != 1:
            raise CheckpointError(
                f"cannot tell which skill the {obs_dim}-dim inversion_obs encoder is (fits: {', '.join(fits) or 'none'}); "
                "pass --skill or the run's --config config.yaml"
            )
        name = fits[0]
    if skill is not None and from_cfg is not None and skill != from_cfg:
        log.warning("--skill %s overrides the config's task %s", skill, from_cfg)
    fd = task_class(name).feature_dim  # UnknownNameError lists the known skills
    if obs_dim not in (fd, fd + 6):
        raise CheckpointError(
            f"{PRIOR}extra_input_models.{TASK_KEY}.trunk.0.weight takes {obs_dim} features; skill {name!r} "
            f"has {fd} (+6 with current pose)"
        )
    return name, obs_dim == fd + 6


def task_obs_features(skill: str, current_pose: bool) -> list[dict]:
    """The task-observation layout of an imported skill, as recorded in its run info."""
    from tt_deploy.tasks.registry import task_class

    spec_ = [{"name": f"{skill} task features (OBS_SPEC.md)", "dims": task_class(skill).feature_dim}]
    if current_pose:
        spec_.append({"name": "current pose: pelvis xyz, head xyz (world)", "dims": 6})
    return spec_


def _import(ckpt_path, config_path=None, skill: str | None = None):
    ckpt = load_checkpoint(ckpt_path)
    cfg = load_config(config_path)
    keys = _Keys(ckpt["actor"])
    te = keys.actor.get(f"{PRIOR}type_embedding.projection.weight")
    if te is not None and te.numel() != 0:
        raise CheckpointError(
            f"{PRIOR}type_embedding.projection.weight has shape {tuple(te.shape)}: type_embedding_dim > 0 "
            "is not supported (the public MaskedMimic config uses 0)"
        )
    sd: dict[str, torch.Tensor] = {}

    # token encoders
    extra = {
        k[len(PRIOR + "extra_input_models.") :].split(".", 1)[0]
        for k in keys.under(PRIOR + "extra_input_models.")
    }
    known = {g.name for g in spec.TOKEN_GROUPS} | {TASK_KEY}
    unknown = sorted(extra - known)
    if unknown:
        key = unknown[0]
        raise CheckpointError(
            f"unexpected key {keys.under(f'{PRIOR}extra_input_models.{key}.')[0]!r}: extra input {key!r} has no "
            f"token in our BFM interface (known: {', '.join(sorted(known))})"
        )
    d_model, hidden = None, None
    for g in spec.TOKEN_GROUPS:
        prefix = f"{PRIOR}obs_encoder." if g.name == "obs" else f"{PRIOR}extra_input_models.{g.name}."
        _, h, out = _normalized_mlp(keys, prefix, f"token_encoders.{g.name}.", g.feat_dim, sd)
        d_model = out if d_model is None else d_model
        hidden = h if hidden is None else hidden
        _same("token width", f"{prefix}trunk", out, d_model)
        _same("token-encoder hidden sizes", f"{prefix}trunk", h, hidden)

    # transformer
    layer_ids = set()
    for k in keys.under(PRIOR + "seqTransEncoder.layers."):
        m = re.match(r"(\d+)\.", k[len(PRIOR + "seqTransEncoder.layers.") :])
        if not m:
            raise CheckpointError(f"unexpected key {k!r}")
        layer_ids.add(int(m.group(1)))
    layer_ids = sorted(layer_ids)
    if not layer_ids or layer_ids != list(range(len(layer_ids))):
        raise CheckpointError(f"missing key {PRIOR}seqTransEncoder.layers.0.* (layers found: {layer_ids})")
    ff_dim = None
    for i in layer_ids:
        p = f"{PRIOR}seqTransEncoder.layers.{i}."
        for name in TRANSFORMER_PARAMS:
            sd[f"layers.{i}.{name}"] = keys.take(p + name).detach().to(torch.float32)
        ff = sd[f"layers.{i}.linear1.weight"].shape[0]
        ff_dim = ff if ff_dim is None else ff_dim
        _same("feed-forward width", p + "linear1.weight", ff, ff_dim)
    for k in keys.under(PRIOR + "seqTransEncoder."):
        if k not in keys.used:
            raise CheckpointError(f"unexpected key {k!r} (nn.TransformerEncoder with a final norm is not v1)")

    # prior head, decoder
    mu = _trunk(keys, "vae_prior.output_models.mu.trunk.")
    _same("prior head input", "vae_prior.output_models.mu.trunk.0.weight", mu[0][0].shape[1], d_model)
    latent = mu[-1][0].shape[0]
    _put_mlp(sd, "prior_mu.", mu)
    for k in keys.under("vae_prior.output_models.mu.") + keys.under("vae_prior.running_obs_norm."):
        if k not in keys.used:
            raise CheckpointError(f"unexpected key {k!r} (the prior head has no input normaliser in v1)")
    for name, t in _norm(keys, "mu_model.running_obs_norm.", spec.SELF_OBS_DIM).items():
        sd[f"decoder_obs_norm.{name}"] = t
    lat = _trunk(keys, "mu_model.extra_input_models.vae_latent.trunk.")
    _same(
        "latent MLP input",
        "mu_model.extra_input_models.vae_latent.trunk.0.weight",
        lat[0][0].shape[1],
        latent,
    )
    _same("latent MLP output", "mu_model.extra_input_models.vae_latent.trunk", lat[-1][0].shape[0], latent)
    _put_mlp(sd, "latent_mlp.", lat)
    dec = _trunk(keys, "mu_model.trunk.")
    want_in = spec.SELF_OBS_DIM + spec.TERRAIN_DIM + latent
    _same("decoder input ([obs, terrain, MLP(z)])", "mu_model.trunk.0.weight", dec[0][0].shape[1], want_in)
    _same("action count", "mu_model.trunk (last Linear)", dec[-1][0].shape[0], spec.ACTION_DIM)
    _put_mlp(sd, "decoder.", dec)

    # the task encoder (Task Tokens runs only)
    skills: dict[str, tuple[TaskEncoder, dict]] = {}
    clamp = config_value(cfg, "algo.config.obs_clamp_value", V1_DEFAULT_CLAMP) if cfg else V1_DEFAULT_CLAMP
    if clamp is not None and not isinstance(clamp, (int, float)):
        raise CheckpointError(f"config.yaml: algo.config.obs_clamp_value = {clamp!r} is not a number or null")
    clamp = None if clamp is None else float(clamp)
    if TASK_KEY in extra:
        esd: dict[str, torch.Tensor] = {}
        fin, h, out = _normalized_mlp(keys, f"{PRIOR}extra_input_models.{TASK_KEY}.", "net.", None, esd)
        _same("task token width", f"{PRIOR}extra_input_models.{TASK_KEY}.trunk", out, d_model)
        name, current_pose = _skill_name(cfg, skill, fin)
        enc = TaskEncoder(EncoderConfig(obs_dim=fin, token_dim=d_model, hidden=h, norm_clamp=clamp))
        enc.load_state_dict(esd)
        info = {"skill": name, "method": "task-token", "task_obs_dim": fin, "current_pose": current_pose,
                "task_obs_spec": task_obs_features(name, current_pose),
                "v1_key": f"{PRIOR}extra_input_models.{TASK_KEY}"}  # fmt: skip
        skills[name] = (enc.eval(), info)
    elif skill is not None:
        raise CheckpointError(
            f"--skill {skill} given, but the checkpoint has no {PRIOR}extra_input_models.{TASK_KEY}.*"
        )

    leftover = keys.leftover()
    if leftover:
        raise CheckpointError(
            f"unexpected key {leftover[0]!r} in the v1 actor state dict ({len(leftover)} unmapped)"
        )

    # sizes come from the shapes; heads, activation and clamp from config.yaml (shapes cannot tell)
    heads = V1_DEFAULT_NUM_HEADS
    if cfg:
        heads = int(config_value(cfg, "algo.config.models.prior_pre_processor.config.num_heads", heads))
        for k in (
            "algo.config.actor.config.activation",
            "algo.config.models.prior_pre_processor.config.activation",
        ):
            act = config_value(cfg, k, "relu")
            if str(act).lower() != "relu":
                raise CheckpointError(f"config.yaml: {k} = {act!r}; only relu (the v1 default) is supported")
    if d_model % heads:
        raise CheckpointError(f"d_model {d_model} is not divisible by num_heads {heads}")
    config = BFMConfig(
        name="protomotions-v1", d_model=d_model, num_layers=len(layer_ids), num_heads=heads, ff_dim=ff_dim,
        token_hidden=hidden, prior_hidden=tuple(w.shape[0] for w, _ in mu[:-1]), latent_dim=latent,
        latent_hidden=tuple(w.shape[0] for w, _ in lat[:-1]), decoder_hidden=tuple(w.shape[0] for w, _ in dec[:-1]),
        norm_clamp=clamp,
    )  # fmt: skip
    bfm = BFM(config)
    expected = bfm.state_dict()
    if set(expected) != set(sd):  # a bug in the table, not a user error
        raise RuntimeError(f"mapping table incomplete: {sorted(set(expected) ^ set(sd))[:5]}")
    for k, t in sd.items():
        if t.shape != expected[k].shape:
            raise CheckpointError(
                f"{k} (from v1) has shape {tuple(t.shape)}, expected {tuple(expected[k].shape)}"
            )
    bfm.load_state_dict(sd)
    ignored = {p: len(keys.under(p)) for p, _ in IGNORED if keys.under(p)}
    meta = {
        "source": SOURCE, "source_path": str(Path(ckpt_path).absolute()), "source_sha256": sha256_file(ckpt_path),
        "config_path": str(Path(config_path).absolute()) if config_path else None,
        "num_heads_from": "config.yaml" if cfg else f"default {V1_DEFAULT_NUM_HEADS} (no config.yaml)",
        "norm_clamp": clamp, "mapped_keys": len(keys.used), "ignored_keys": ignored,
        "epoch": _int_or_none(ckpt.get("epoch")), "step": _int_or_none(ckpt.get("step")),
    }  # fmt: skip
    for _, info in skills.values():
        info.update({k: meta[k] for k in ("source", "source_path", "source_sha256")})
        info["env_steps"] = meta["step"]
    return bfm.eval(), skills, meta


def _int_or_none(v):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    return int(v) if isinstance(v, (int, float)) else None


def import_protomotions(
    ckpt_path: str | os.PathLike, config_path: str | os.PathLike | None = None, *, skill: str | None = None
) -> tuple[BFM, dict[str, tuple[TaskEncoder, dict]]]:
    """(BFM, {skill: (TaskEncoder, info)}) from a v1 `last.ckpt` (+ its Hydra config.yaml).

    A pretrained MaskedMimic checkpoint gives no skills; a Task Tokens run gives one. Raises
    CheckpointError naming the key on anything the mapping does not account for.
    """
    bfm, skills, _ = _import(ckpt_path, config_path, skill)
    return bfm, skills


def import_to_dir(
    ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, config_path=None, *, skill: str | None = None
) -> dict:
    """Write DIR/bfm.safetensors and DIR/runs/<skill>/checkpoints/best.safetensors (run-dir format
    `ttdeploy export --run` consumes). Returns a summary for the CLI."""
    bfm, skills, meta = _import(ckpt_path, config_path, skill)
    out = Path(out_dir)
    bfm_path = out / "bfm.safetensors"
    save_bfm(bfm, bfm_path, info=meta)
    bfm_sha = sha256_file(bfm_path)  # == checkpoints.bfm_sha256 of the BFM loaded from this path
    runs = {}
    for name, (enc, info) in skills.items():
        run = out / "runs" / name
        save_encoder(enc, run / "checkpoints" / "best.safetensors",
                     info=EncoderInfo.from_dict({**info, "bfm_sha256": bfm_sha}))
        runs[name] = {"run_dir": str(run), **info}
    return {"bfm_path": str(bfm_path), "bfm_sha256": bfm_sha, "config": bfm.config.to_dict(), "meta": meta,
            "skills": runs}  # fmt: skip
