"""Deployment: int8 post-training quantization, the int8 reference executor, .tflite and ONNX writers.

    qmodel = quantize(arch, module, calibration_inputs)     # fold BN, calibrate, int8
    outputs = run_int8(qmodel, qmodel.input_spec.quantize(x_nhwc))
    Path("model.tflite").write_bytes(to_tflite(qmodel))     # runs in TFLM and LiteRT, bit-exact
    onnx.save(to_onnx_qdq(qmodel), "model_int8.onnx")

ONNX needs the ``onnx`` package (``pip install tinyevo[deploy]``); import ``tinyevo.deploy.onnx_export``
for it. ``tinyevo.deploy.runtimes`` runs a .tflite in TFLM or LiteRT, and an .onnx in onnxruntime with
the setting that makes its int8 kernels exact on every x86 CPU (``onnxruntime_session``).
``tinyevo.deploy.exporters`` has one exporter per file format (``EXPORTERS``: tflite, onnx, onnx-qdq,
c); ``tinyevo.deploy.export.write_model`` quantizes a network and writes it with one. Deploy takes an
``Architecture`` with its weights and calibration inputs, and never reads a run folder.
"""
from tinyevo.deploy.fold import FloatGraph, FloatOp, fold
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import calibrate, quantize, quantize_graph
from tinyevo.deploy.quantized_model import QuantizedModel, QuantizedOp, TensorSpec
from tinyevo.deploy.tflite_writer import save_tflite, to_tflite

__all__ = ["FloatGraph", "FloatOp", "QuantizedModel", "QuantizedOp", "TensorSpec", "calibrate",
           "fold", "quantize", "quantize_graph", "run_int8", "save_tflite", "to_tflite"]
