"""Behaviour codes in the BFM's text-embedding slot: orthogonal unit codes, bfm_inputs fills the slot only when
asked, and the embedded BFM's actions depend on the slot (so a code can select a behaviour once pretrained)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tt_deploy.errors import InputError, UnknownNameError
from tt_deploy.obs.behaviours import BEHAVIOURS, CODE_DIM, NONE, behaviour_code, behaviour_tokens
from tt_deploy.obs.inputs import PoseHistory, bfm_inputs
from tt_deploy.obs.state import BodyState


def _standing(n: int) -> BodyState:
    pos = np.zeros((n, 24, 3))
    pos[..., 2] = np.linspace(0.05, 1.6, 24)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 24, 1))
    return BodyState(pos, quat, np.zeros((n, 24, 3)), np.zeros((n, 24, 3)))


def test_codes_are_orthogonal_unit_vectors_on_their_own_blocks():
    codes = np.stack([behaviour_code(b) for b in BEHAVIOURS])
    assert codes.shape == (len(BEHAVIOURS), CODE_DIM) and codes.dtype == np.float32
    assert np.allclose(codes @ codes.T, np.eye(len(BEHAVIOURS)), atol=1e-6)
    with pytest.raises(UnknownNameError, match="known: jump, strike"):
        behaviour_code("dance")
    tokens, mask = behaviour_tokens(np.array([NONE, 1]))
    assert not tokens[0].any() and np.array_equal(tokens[1, 0], behaviour_code("strike"))
    assert mask[:, 0].tolist() == [False, True]
    with pytest.raises(InputError, match="behaviour index 5"):
        behaviour_tokens(np.array([5]))


def test_bfm_inputs_fill_the_text_slot_only_with_a_code_and_the_bfm_reads_it():
    from tt_deploy.models.checkpoints import default_bfm

    state, history = _standing(3), PoseHistory(3)
    history.reset(None, state, np.zeros(3))
    plain = bfm_inputs(state, np.zeros(3), history)
    coded = bfm_inputs(state, np.zeros(3), history, behaviour=np.array([NONE, 0, 1]))
    assert not plain["motion_text_embeddings_mask"].any() and not plain["motion_text_embeddings"].any()
    assert coded["motion_text_embeddings_mask"][:, 0].tolist() == [False, True, True]
    assert np.array_equal(coded["motion_text_embeddings"][2], behaviour_code("strike"))
    for k in plain:  # nothing else changes
        if not k.startswith("motion_text"):
            assert np.array_equal(plain[k], coded[k]), k
    bfm, _ = default_bfm()
    with torch.no_grad():
        a = [bfm({k: torch.as_tensor(v) for k, v in x.items()}).numpy() for x in (plain, coded)]
    assert np.allclose(a[0][0], a[1][0], atol=1e-6)  # no code: the same action
    assert np.abs(a[0][1:] - a[1][1:]).max() > 1e-4  # a visible code reaches the actions
