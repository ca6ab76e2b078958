"""The lab that made the embedded BFM: prompt task, teachers, PPO and DAgger stages, BFM evaluation, model card,
and the RL experts the next BFM is to be distilled from (glide_expert).

Nothing on the deploy path (export, runtime, sim2sim, bench, train, obs) imports it.
"""

__all__ = ["dagger", "evaluate", "gait_teacher", "glide_expert", "model_card", "policy", "ppo_stage", "prompt_task", "reach_teacher", "teacher_env"]
