"""IR -> PyTorch: ``build(architecture)`` gives an ``nn.Module`` taking NCHW float input."""
from tinyevo.nn.build import ArchitectureModule, build

__all__ = ["ArchitectureModule", "build"]
