"""The facts every part of tt-deploy shares: humanoid topology, token layout, control rate.

This module is the single source of these facts (no torch, no numpy). The simulator, the
observation builders, the models and the exporter import them from here; the runtime reads
the same facts back from a bundle's manifest, which the exporter fills from this module.
Values marked (ref) follow the public MaskedMimic v1 / Task Tokens release and must not drift.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- humanoid (ref) -------------------------------------------------------------------------
BODY_NAMES: tuple[str, ...] = (
    "Pelvis", "L_Hip", "L_Knee", "L_Ankle", "L_Toe", "R_Hip", "R_Knee", "R_Ankle", "R_Toe",
    "Torso", "Spine", "Chest", "Neck", "Head", "L_Thorax", "L_Shoulder", "L_Elbow", "L_Wrist",
    "L_Hand", "R_Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "R_Hand",
)  # fmt: skip
NUM_BODIES = len(BODY_NAMES)  # 24
# Parent of each body in BODY_NAMES order (-1 for the root); DFS order, root first.
BODY_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 12, 11, 14, 15, 16, 17, 11, 19, 20, 21, 22,
)  # fmt: skip
HINGE_AXES = ("x", "y", "z")
# 23 joints (every body but the root) x 3 hinges = 69 actuated DoF, in body order, x-y-z.
JOINT_NAMES: tuple[str, ...] = tuple(f"{b}_{a}" for b in BODY_NAMES[1:] for a in HINGE_AXES)
NUM_DOF = len(JOINT_NAMES)  # 69
ACTION_DIM = NUM_DOF
ACTION_CLAMP = 1.0  # actions are clamped to [-1, 1] outside the network

# Bodies a target-pose prompt can condition, in the reference's (non-ascending) order.
CONDITIONABLE_BODIES: tuple[str, ...] = ("L_Ankle", "R_Ankle", "Pelvis", "Head", "L_Hand", "R_Hand")
CONDITIONABLE_BODY_IDS: tuple[int, ...] = tuple(BODY_NAMES.index(b) for b in CONDITIONABLE_BODIES)
FOOT_BODIES: tuple[str, ...] = ("L_Ankle", "L_Toe", "R_Ankle", "R_Toe")
STRIKE_BODIES: tuple[str, ...] = ("R_Hand", "R_Wrist", "R_Elbow")  # ref strike.yaml strike_body_names


def _pd_gain_for(body: str) -> tuple[float, float]:
    """Reference PD gains (kp, kd) of a body's joint, by DESIGN.md section 3."""
    if body in ("L_Hip", "L_Knee", "L_Ankle", "R_Hip", "R_Knee", "R_Ankle"):
        return 800.0, 80.0
    if body in ("Torso", "Spine", "Chest"):
        return 1000.0, 100.0
    if body in ("L_Wrist", "L_Hand", "R_Wrist", "R_Hand"):
        return 300.0, 30.0
    return 500.0, 50.0  # toes, neck, head, thorax, shoulders, elbows


PD_GAINS: tuple[tuple[float, float], ...] = tuple(_pd_gain_for(n.rsplit("_", 1)[0]) for n in JOINT_NAMES)

# --- timing (ref) ---------------------------------------------------------------------------
CONTROL_HZ = 30
CONTROL_DT = 1.0 / CONTROL_HZ

# --- token layout (ref) ---------------------------------------------------------------------
SELF_OBS_DIM = 358
HISTORY_STEPS = 120  # control steps of pose history kept
HISTORY_TOKEN_STEPS: tuple[int, ...] = tuple(1 + 8 * k for k in range(15))  # 1, 9, ..., 113 steps ago
NUM_FUTURE_TARGETS = 10  # target-pose slots 0..9 = 1..10 steps ahead; slot 10 = the far target


@dataclass(frozen=True)
class TokenGroup:
    """One kind of input token of the BFM.

    name: graph input name (v1 key); n_tokens x feat_dim features; mask_name is the bool
    input (True = visible) that hides single tokens, or None for groups that are never hidden.
    """

    name: str
    n_tokens: int
    feat_dim: int
    mask_name: str | None

    @property
    def maskable(self) -> bool:
        return self.mask_name is not None


TOKEN_GROUPS: tuple[TokenGroup, ...] = (
    TokenGroup("obs", 1, SELF_OBS_DIM, None),
    TokenGroup("historical_pose_obs", 15, 217, "historical_pose_obs_mask"),
    TokenGroup("masked_mimic_target_poses", 11, 184, "masked_mimic_target_poses_masks"),
    TokenGroup("motion_text_embeddings", 1, 512, "motion_text_embeddings_mask"),
    TokenGroup("object_bounding_box_obs", 1, 37, "object_bounding_box_obs_mask"),
    TokenGroup("terrain", 1, 256, None),
)
TOKEN_GROUP_BY_NAME = {g.name: g for g in TOKEN_GROUPS}
TASK_TOKEN_NAME = "task_token"  # bfm.onnx input: the encoder's output token, (B, d)
TASK_OBS_NAME = "task_obs"  # encoder.onnx / fused.onnx input, (B, task_obs_dim)
ACTIONS_NAME = "actions"  # every graph's output, (B, 69), already clamped
NUM_PRIOR_TOKENS = sum(g.n_tokens for g in TOKEN_GROUPS)  # 30; + 1 task token = 31
TERRAIN_DIM = TOKEN_GROUP_BY_NAME["terrain"].feat_dim
LATENT_DIM = 64  # z (ref)

# --- ProtoMotions v3 MaskedMimic (models/protomotions_v3.py reads the rest from each checkpoint's config) ---
V3_VAE_NOISE = "vae_noise"  # input: the latent's noise eps, (B, latent); zeros = the prior mean
V3_PREVIOUS_ACTIONS = "previous_actions"  # input and state: the last raw action, zeros at episode start
V3_ACTIONS = ACTIONS_NAME  # output: the RAW action (not clamped)
V3_BOOL_INPUTS = ("masked_mimic_target_masks",)  # given as raw bool by the original env


def group_input_names(groups) -> list[str]:
    """Graph input names for kept token groups, in spec order, each group followed by its mask."""
    names = []
    for g in TOKEN_GROUPS:
        if g.name in groups:
            names.append(g.name)
            if g.mask_name:
                names.append(g.mask_name)
    return names
