"""Search spaces (survey section II-A): each decodes JSON genomes into the architecture IR.

``chain`` (variable-length layer sequences), ``mbv2`` (MCUNet's MobileNetV2 block space),
``nb201`` (NAS-Bench-201 cells), ``dag`` (Genetic CNN's multi-branch stages) and ``nasnet``
(NASNet's normal and reduction cells with a searched macro skeleton).
``create_space("nb201")`` builds one by name.
"""
from tinyevo.spaces import chain, dag, mbv2, nasnet, nb201  # noqa: F401  (registers the built-in spaces)
from tinyevo.spaces.base import SPACES, Genome, SearchSpace, create_space
from tinyevo.spaces.chain import ChainSpace
from tinyevo.spaces.dag import GeneticCnnSpace
from tinyevo.spaces.mbv2 import MobileNetV2Space
from tinyevo.spaces.nasnet import NasNetSpace
from tinyevo.spaces.nb201 import NasBench201Space

__all__ = ["SPACES", "ChainSpace", "GeneticCnnSpace", "Genome", "MobileNetV2Space",
           "NasBench201Space", "NasNetSpace", "SearchSpace", "create_space"]
