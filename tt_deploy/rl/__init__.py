"""On-policy RL shared by task-token training and BFM pretraining: PPO, runner, rollout storage, run log, env snapshots."""

__all__ = ["env_state", "ppo", "run_log", "runner", "storage"]
