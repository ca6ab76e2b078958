"""Task registry: skill name -> Task class. Unknown names fail with the list of known ones."""

from __future__ import annotations

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
# Reference (ProtoMotions) code names of the two locomotion tasks, accepted as aliases.
ALIASES = {"direction_facing": "steering"}


def task_class(name: str) -> type[Task]:
    """The Task subclass registered under `name`."""
    key = ALIASES.get(name, name)
    if key not in _TASK_CLASSES:
        raise UnknownNameError("task", name, TASKS)
    return _TASK_CLASSES[key]


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
