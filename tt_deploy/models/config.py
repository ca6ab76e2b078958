"""Named BFM configurations. Both share the exact MaskedMimic v1 token interface (spec.TOKEN_GROUPS)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tt_deploy.errors import UnknownNameError
from tt_deploy.spec import LATENT_DIM


@dataclass(frozen=True)
class BFMConfig:
    """Sizes of a BFM. `paper` reproduces the reference (~13.3 M deployable parameters)."""

    name: str = "paper"
    d_model: int = 512  # token width
    num_layers: int = 4
    num_heads: int = 4
    ff_dim: int = 1024
    token_hidden: tuple[int, ...] = (256, 256)  # every per-token encoder: in -> hidden -> d
    prior_hidden: tuple[int, ...] = (256, 128)  # prior mean head: d -> hidden -> z
    latent_dim: int = LATENT_DIM
    latent_hidden: tuple[int, ...] = (256, 128)  # decoder's MLP(z): z -> hidden -> z
    decoder_hidden: tuple[int, ...] = (1024, 1024, 1024)
    norm_clamp: float | None = 5.0
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BFMConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


def _small() -> BFMConfig:
    """Same interface, ~0.5 M parameters: trainable with PPO on 2 CPU cores.

    Sized by measured update cost: a d=128 / decoder 512-512-256 variant (1.37 M params, ~12 M
    multiply-adds per sample) made each PPO update ~20x slower than collecting its samples. This
    one costs ~2 M per sample; its decoder matches the 256-256 MLP policy that learned to stand in
    the DESIGN.md section 8 probe.
    """
    return BFMConfig(
        name="small", d_model=64, num_layers=2, num_heads=4, ff_dim=128,
        token_hidden=(64,), prior_hidden=(64,), latent_hidden=(64,), decoder_hidden=(256, 256),
    )  # fmt: skip


BFM_CONFIGS = {"paper": BFMConfig, "small": _small}


def bfm_config(name: str) -> BFMConfig:
    if name not in BFM_CONFIGS:
        raise UnknownNameError("BFM config", name, BFM_CONFIGS)
    return BFM_CONFIGS[name]()


@dataclass(frozen=True)
class EncoderConfig:
    """A task encoder: running norm on task_obs + ReLU MLP -> one d-dim token."""

    obs_dim: int
    token_dim: int
    hidden: tuple[int, ...] = (256, 256)  # "bigger" variant: (512, 512, 512)
    norm_clamp: float | None = 5.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})
