"""``make demo``: sample architectures of every space and show what each costs on an STM32F746."""
from __future__ import annotations

import sys

from tinyevo.cli import main

if __name__ == "__main__":
    from tinyevo.spaces import SPACES

    status = 0
    for name in SPACES.names():
        print(f"== space {name}: 3 random architectures, cost on STM32F746")
        status |= main(["sample", "--space", name, "--seed", "0", "--count", "3", "--board", "stm32f746"])
    print("== MLPerf Tiny ResNet-8 (examples/resnet8.json)")
    status |= main(["cost", "examples/resnet8.json", "--board", "stm32f746"])
    sys.exit(status)
