"""The few numbers of the TFLite flatbuffer schema (tensorflow/lite/schema/schema.fbs) tinyevo writes.

Each table is listed as its field slots (the field's position in the schema, which is its id);
enums as the values the schema gives them. Only what ``tflite_writer`` emits is here.
"""
from __future__ import annotations

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# enum BuiltinOperator, with the operator version tinyevo declares for its int8 use
BUILTIN_OPERATOR = {"add": 0, "average_pool_2d": 1, "concatenation": 2, "conv_2d": 3,
                    "depthwise_conv_2d": 4, "fully_connected": 9, "max_pool_2d": 17, "relu": 19,
                    "relu6": 21, "reshape": 22, "quantize": 114}
OPERATOR_VERSION = {"add": 2, "average_pool_2d": 2, "concatenation": 2, "conv_2d": 3,
                    "depthwise_conv_2d": 3, "fully_connected": 4, "max_pool_2d": 2, "relu": 2,
                    "relu6": 2, "reshape": 1, "quantize": 2}

# union BuiltinOptions: the type tag of each options table
BUILTIN_OPTIONS = {"Conv2DOptions": 1, "DepthwiseConv2DOptions": 2, "Pool2DOptions": 5,
                   "FullyConnectedOptions": 8, "ConcatenationOptions": 10, "AddOptions": 11,
                   "ReshapeOptions": 17}

TENSOR_TYPE = {"float32": 0, "int32": 2, "int8": 9}  # enum TensorType
PADDING = {"same": 0, "valid": 1}  # enum Padding
ACTIVATION = {"none": 0, "relu": 1, "relu6": 3}  # enum ActivationFunctionType

# table field slots: {field name: slot}, and the number of slots the table has
MODEL = dict(version=0, operator_codes=1, subgraphs=2, description=3, buffers=4), 8
OPERATOR_CODE = dict(deprecated_builtin_code=0, custom_code=1, version=2, builtin_code=3), 4
SUBGRAPH = dict(tensors=0, inputs=1, outputs=2, operators=3, name=4), 5
BUFFER = dict(data=0), 3
TENSOR = dict(shape=0, type=1, buffer=2, name=3, quantization=4), 7
QUANTIZATION = dict(min=0, max=1, scale=2, zero_point=3, quantized_dimension=6), 7
OPERATOR = dict(opcode_index=0, inputs=1, outputs=2, builtin_options_type=3, builtin_options=4), 5

OPTIONS = {
    "Conv2DOptions": (dict(padding=0, stride_w=1, stride_h=2, fused_activation_function=3,
                           dilation_w_factor=4, dilation_h_factor=5), 7),
    "DepthwiseConv2DOptions": (dict(padding=0, stride_w=1, stride_h=2, depth_multiplier=3,
                                    fused_activation_function=4, dilation_w_factor=5,
                                    dilation_h_factor=6), 7),
    "Pool2DOptions": (dict(padding=0, stride_w=1, stride_h=2, filter_width=3, filter_height=4,
                           fused_activation_function=5), 6),
    "FullyConnectedOptions": (dict(fused_activation_function=0, weights_format=1,
                                   keep_num_dims=2), 4),
    "ConcatenationOptions": (dict(axis=0, fused_activation_function=1), 2),
    "AddOptions": (dict(fused_activation_function=0), 2),
    "ReshapeOptions": (dict(new_shape=0), 1),
}

# scalar field types of the options tables (everything else there is an int32)
BYTE_FIELDS = {"padding", "fused_activation_function", "weights_format"}
BOOL_FIELDS = {"keep_num_dims"}
