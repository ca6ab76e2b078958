"""Simulators behind one interface (`sim.base.Simulator`): MuJoCo on CPU, Isaac Gym on GPUs, physics
perturbations, the humanoid model and the arm IK used by training oracles and pretraining."""

__all__ = ["arm_ik", "base", "humanoid_model", "isaacgym_backend", "mujoco_backend", "perturbations", "registry", "tools"]
