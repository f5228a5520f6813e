"""The runner: budgets, hard constraints, duplicate detection, executors, progress and resume."""
from tinyevo.run.budget import Budget
from tinyevo.run.constraints import LIMITED_METRICS, ConstraintFilter, Constraints
from tinyevo.run.executors import (EXECUTORS, Executor, ProcessExecutor, RayExecutor,
                                   SerialExecutor, create_executor)
from tinyevo.run.runner import RunSettings, Runner

__all__ = ["Budget", "ConstraintFilter", "Constraints", "EXECUTORS", "Executor", "LIMITED_METRICS",
           "ProcessExecutor", "RayExecutor", "RunSettings", "Runner", "SerialExecutor", "create_executor"]
