"""C code generation for microcontrollers: a static memory plan and a C99 library per model.

    generate_c(qmodel, "out/")                     # the library (emit)
    run_host(build_host("out/"), inputs)           # gcc on this machine (host)
"""
from tinyevo.deploy.codegen.emit import GeneratedC, generate_c, render_c
from tinyevo.deploy.codegen.host import build_host, run_host, time_host
from tinyevo.deploy.codegen.planner import MemoryPlan, plan_memory

__all__ = ["GeneratedC", "MemoryPlan", "build_host", "generate_c", "plan_memory", "render_c", "run_host",
           "time_host"]
