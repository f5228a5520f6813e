"""The architecture IR: ops, shapes, validation, JSON (see DESIGN.md, 'One spine')."""
from tinyevo.arch.builder import GraphBuilder
from tinyevo.arch.graph import INPUT, Architecture, Node
from tinyevo.arch.ops import OPS, OpSpec, Shape, same_padding

__all__ = ["Architecture", "GraphBuilder", "INPUT", "Node", "OPS", "OpSpec", "Shape", "same_padding"]
