"""Task generators, found by name. They know nothing of the suite."""
from __future__ import annotations

import dataclasses

from .assoc_recall import AssocRecall
from .base import IGNORE, SPLITS, Batch, Task, TaskConfigError, split_seed
from .copy_task import Copy
from .induction_heads import InductionHeads
from .mqar import MQAR

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (AssocRecall, Copy, InductionHeads, MQAR)}


def make_task(name: str, **params) -> Task:
    """Build a task by name. Unknown names or parameters raise TaskConfigError (one line);
    impossible values raise pydantic's ValidationError from the task's own schema."""
    if name not in TASKS:
        raise TaskConfigError(f"task: unknown '{name}'; allowed: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    # 'seq_len' is the public name of the optional seq_len_ field
    public = {("seq_len" if k == "seq_len_" else k): k for k in fields}
    unknown = sorted(set(params) - set(public))
    if unknown:
        raise TaskConfigError(
            f"{unknown[0]}: not a parameter of task '{name}'; allowed: {', '.join(sorted(public))}")
    return cls(**{public[k]: v for k, v in params.items()})


__all__ = ["TASKS", "SPLITS", "IGNORE", "Batch", "Task", "TaskConfigError", "make_task", "split_seed"]
