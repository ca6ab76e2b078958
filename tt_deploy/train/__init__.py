"""Task-token training (`ttdeploy train`): PPO through the frozen BFM and the baselines, the null-token and
oracle-distilled starts, parallel launches, and the results (`compare`, `robustness`)."""

__all__ = ["compare", "distill", "launcher", "null_token", "oracles", "policies", "results", "robustness", "task_token"]
