"""``make demo``: a real search on the built-in `digits` data for an STM32F746, then its front.

Rerunning resumes the run in ``runs/demo`` (delete the folder to start over).
"""
from __future__ import annotations

import sys

from tinyevo.cli import main

DEMO = ["search", "--space", "chain", "--dataset", "digits", "--board", "stm32f746",
        "--strategy", "nsga2", "--objectives", "accuracy,peak_sram_bytes", "--max-sram", "32KB",
        "--max-flash", "64KB", "--budget", "20", "--epochs", "3", "--final-epochs", "10",
        "--final-models", "3",
        "--seed", "0", "--out", "runs/demo"]

if __name__ == "__main__":
    print("tinyevo demo: " + " ".join(["tinyevo", *DEMO]), flush=True)
    sys.exit(main(DEMO + sys.argv[1:]))
