"""The observation contract, numpy only: body state, BFM inputs, prompts, rotations and task priors.

What a robot controller imports beside `tt_deploy.runtime`; nothing here imports torch or a simulator.
"""

__all__ = ["inputs", "priors", "prompts", "rotations", "state"]
