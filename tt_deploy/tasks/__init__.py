"""The five tasks (goals, task observation, reward, the reference's success rule per goal segment), their
`bfm` / `reference` goal presets and `TaskEnv`, the vectorised environment every trainer and checker steps."""

__all__ = ["base", "direction", "env", "goals", "long_jump", "random", "reach", "registry", "steering", "strike"]
