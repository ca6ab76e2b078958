"""Behaviour codes: which behaviour a prompt asks for (jump, strike), in the BFM's text-embedding token.

Why: a pelvis or hand target alone cannot say "jump over this line" or "knock this pillar over"; MaskedMimic
conditions such behaviours on a text embedding. The BFM interface already has that slot
(`motion_text_embeddings`, one 512-wide token with its mask), so a behaviour is a fixed code there instead of a
new token group: every tool, graph and test keeps the token layout it has. A code is a unit vector on its own
block of CODE_BLOCK dimensions (block k = behaviour k), so codes are orthogonal and the slot holds
512 / CODE_BLOCK of them. No code (the mask False) is every prompt today; the BFM's pretraining drops the code
at random (token dropout) so that a prompt without one stays in distribution.

One place for the code layout: the prompt task of BFM pretraining, the obs builders and the C++ runtime read it
from here (or from docs/observations.md, which prints this layout).
"""

from __future__ import annotations

import numpy as np

from tt_deploy import spec
from tt_deploy.errors import InputError, UnknownNameError

BEHAVIOURS = ("jump", "strike")  # index k: block k of the code
TEXT_GROUP = spec.TOKEN_GROUP_BY_NAME["motion_text_embeddings"]
CODE_DIM = TEXT_GROUP.feat_dim  # 512
CODE_BLOCK = 16  # dimensions per behaviour: 32 codes fit
NONE = -1  # a prompt without a behaviour code (the token masked)


def behaviour_index(name: str) -> int:
    """The behaviour's index in BEHAVIOURS; UnknownNameError naming the known ones."""
    if name not in BEHAVIOURS:
        raise UnknownNameError("behaviour", name, BEHAVIOURS)
    return BEHAVIOURS.index(name)


def behaviour_code(name: str) -> np.ndarray:
    """(512,) float32: 1/sqrt(CODE_BLOCK) on the behaviour's block, 0 elsewhere (unit norm)."""
    k = behaviour_index(name)
    code = np.zeros(CODE_DIM, np.float32)
    code[k * CODE_BLOCK : (k + 1) * CODE_BLOCK] = 1.0 / np.sqrt(CODE_BLOCK)
    return code


def behaviour_tokens(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The text-embedding token and its mask for N envs: index (N,) into BEHAVIOURS, NONE for no code.

    Returns (N, 1, 512) float32 and (N, 1) bool (True: visible), the shapes `bfm_inputs` fills."""
    index = np.asarray(index, np.int64).reshape(-1)
    bad = (index < NONE) | (index >= len(BEHAVIOURS))
    if bad.any():
        raise InputError(f"behaviour index {int(index[bad][0])}: must be {NONE} (none) or 0..{len(BEHAVIOURS) - 1} "
                         f"({', '.join(BEHAVIOURS)})")  # fmt: skip
    tokens = _CODES[index + 1][:, None, :]
    return tokens, (index != NONE)[:, None]


# row 0: no code (NONE), row k + 1: behaviour k; built once, bfm_inputs indexes it every control step
_CODES = np.stack([np.zeros(CODE_DIM, np.float32), *(behaviour_code(b) for b in BEHAVIOURS)])
_CODES.flags.writeable = False
