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
