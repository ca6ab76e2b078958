"""Simulators behind one interface (`sim.base.Simulator`): MuJoCo C on CPU, MuJoCo Warp on CPU or CUDA, Isaac Gym
on GPUs, the action path and MuJoCo state layout they share, physics perturbations, the humanoid model and the arm
IK used by training oracles and pretraining."""

__all__ = ["actions", "arm_ik", "base", "humanoid_model", "isaacgym_backend", "mjlayout", "mjwarp_backend",
           "mujoco_backend", "perturbations", "registry", "tools"]
