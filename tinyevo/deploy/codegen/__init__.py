"""C code generation for microcontrollers: a static memory plan and a C99 library per model."""
from tinyevo.deploy.codegen.planner import MemoryPlan, plan_memory

__all__ = ["MemoryPlan", "plan_memory"]
