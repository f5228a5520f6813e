"""Published reference models rebuilt in the IR (MLPerf Tiny). Used by tests, examples and benchmarks."""
from tinyevo.zoo.mlperf_tiny import ds_cnn, resnet8

MODELS = {"resnet8": resnet8, "ds_cnn": ds_cnn}

__all__ = ["MODELS", "ds_cnn", "resnet8"]
