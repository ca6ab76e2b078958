"""Task registry: skill name -> Task class. Unknown names fail with the list of known ones."""

from __future__ import annotations

import logging

from tt_deploy.errors import UnknownNameError
from tt_deploy.tasks.base import Task
from tt_deploy.tasks.direction import DirectionTask
from tt_deploy.tasks.long_jump import LongJumpTask
from tt_deploy.tasks.reach import ReachTask
from tt_deploy.tasks.steering import SteeringTask
from tt_deploy.tasks.strike import StrikeTask

_TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (DirectionTask, SteeringTask, ReachTask, StrikeTask, LongJumpTask)
}
TASKS: tuple[str, ...] = tuple(_TASK_CLASSES)
log = logging.getLogger(__name__)
# Our names are the paper's (Direction, Steering). The reference code swaps them: its `steering` env is
# the paper's Direction and its `direction_facing` env the paper's Steering. `direction_facing` is
# accepted as an alias (with a warning); `steering` always means the paper's Steering here.
ALIASES = {"direction_facing": "steering"}


def resolve_task_name(name: str) -> str:
    """Our registry name for `name`; a reference code name is mapped with a warning, never silently."""
    if name in ALIASES:
        log.warning("task %r is the reference code's name for the paper's Steering: using our %r "
                    "(the reference's `steering` env is our `direction`)", name, ALIASES[name])
        return ALIASES[name]
    if name not in _TASK_CLASSES:
        raise UnknownNameError("task", name, TASKS)
    return name


def task_class(name: str) -> type[Task]:
    """The Task subclass registered under `name` (or its reference alias)."""
    return _TASK_CLASSES[resolve_task_name(name)]


def make_task(name: str, num_envs: int, **kw) -> Task:
    """Build task `name` for num_envs environments; kw go to the task's constructor."""
    return task_class(name)(num_envs, **kw)


def make_task_for(name: str, num_envs: int, task_obs_dim: int | None, **kw) -> Task:
    """Build task `name` whose observation has `task_obs_dim` features, as a bundle records it.

    One place decides the optional +6 current-pose features from the recorded width, so verify,
    sim2sim, the controller example and the demo all build exactly the observation the encoder was
    trained on. None = the task's default width.
    """
    cls = task_class(name)
    if task_obs_dim is not None:
        from tt_deploy.errors import InputError
        from tt_deploy.tasks.base import CURRENT_POSE_DIM

        widths = {cls.feature_dim: False, cls.feature_dim + CURRENT_POSE_DIM: True}
        if task_obs_dim not in widths:
            raise InputError(f"skill {name!r} has a {task_obs_dim}-dim task observation; task {name!r} makes "
                             f"{cls.feature_dim} (or {cls.feature_dim + CURRENT_POSE_DIM} with current pose)")
        kw.setdefault("current_pose", widths[task_obs_dim])
    return cls(num_envs, **kw)


def make_task_for_skill(skill, num_envs: int, **kw) -> Task:
    """Build the task a bundle's skill (a `SkillManifest`) was trained on: its observation width, its
    prior prompt (skill.json `task_prior`) and its goal ranges (skill.json `goals`)."""
    from tt_deploy.tasks.goals import task_kwargs_from_record

    if skill.task_prior is not None:
        kw.setdefault("prior", True)
    for k, v in task_kwargs_from_record(skill.name, skill.goals).items():
        kw.setdefault(k, v)
    task = make_task_for(skill.name, num_envs, skill.task_obs_dim, **kw)
    if skill.task_prior is not None and task.prior_prompt is not None:
        # the prior as recorded, not today's defaults: a default may change after a skill shipped
        from tt_deploy.obs.priors import make_prior

        task.prior_prompt = make_prior(skill.task_prior["name"], num_envs, **skill.task_prior.get("params", {}))
    return task
