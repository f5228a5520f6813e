"""Search spaces (survey section II-A): each decodes JSON genomes into the architecture IR.

``chain`` (variable-length layer sequences), ``mbv2`` (MCUNet's MobileNetV2 block space),
``nb201`` (NAS-Bench-201 cells), ``dag`` (Genetic CNN's multi-branch stages), ``nasnet``
(NASNet's normal and reduction cells with a searched macro skeleton), ``blocks`` (CNN-GA's
variable-length sequences of conv, res, dense and pooling units), ``densenet`` (DenseNet-BC's
macro with searched dense blocks), ``kws`` (MLPerf Tiny's DS-CNN family over time x coefficient
maps) and ``tcn`` (temporal convolutional networks over 1-D sequences).
``create_space("nb201")`` builds one by name.
"""
from tinyevo.spaces import blocks, chain, dag, densenet, kws, mbv2, nasnet, nb201, tcn  # noqa: F401  (registers them)
from tinyevo.spaces.base import SPACES, Genome, SearchSpace
from tinyevo.spaces.blocks import BlocksSpace
from tinyevo.spaces.chain import ChainSpace
from tinyevo.spaces.dag import GeneticCnnSpace
from tinyevo.spaces.densenet import DenseNetSpace
from tinyevo.spaces.kws import KwsSpace
from tinyevo.spaces.mbv2 import MobileNetV2Space
from tinyevo.spaces.nasnet import NasNetSpace
from tinyevo.spaces.nb201 import NasBench201Space
from tinyevo.spaces.tcn import TcnSpace

__all__ = ["SPACES", "BlocksSpace", "ChainSpace", "DenseNetSpace", "GeneticCnnSpace", "Genome",
           "KwsSpace", "MobileNetV2Space", "NasBench201Space", "NasNetSpace", "SearchSpace", "TcnSpace",
           "create_space"]


def create_space(name: str, **options) -> SearchSpace:
    """``create_space("dag", nodes=[4, 5])``: the registered space ``name`` built with ``options``;
    a clear TinyevoError for an unknown name or option."""
    return SPACES.create(name, **options)
