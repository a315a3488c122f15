"""The rule table: one entry per ATen op kind (overload packet name, in-place '_' stripped).

An op missing here is unknown: it freezes every channel it touches and the analysis report
names the op and the module it ran in. Add a rule here, never a special case in the tracer.
"""
from __future__ import annotations

from . import elementwise, norms, producers, reduce, shape

_POINTWISE = """
relu relu6 gelu silu sigmoid hardsigmoid hardswish hardtanh tanh elu selu celu leaky_relu mish
softplus softsign log_sigmoid hardshrink softshrink clamp clamp_min clamp_max threshold dropout
feature_dropout alpha_dropout feature_alpha_dropout clone contiguous alias detach lift_fresh_copy
_to_copy to type_as exp expm1 log log1p log2 neg abs sqrt rsqrt reciprocal erf sin cos square pow
sign floor ceil round trunc frac logical_not bitwise_not nan_to_num zeros_like ones_like empty_like
full_like fill zero add sub rsub mul div true_divide floor_divide remainder fmod maximum minimum
where masked_fill eq ne lt le gt ge atan2 logical_and logical_or logical_xor bitwise_and
bitwise_or addcmul addcdiv lerp copysign xlogy
""".split()

_MIXING = """
matmul bmm mm einsum baddbmm addmm addbmm scaled_dot_product_attention
_native_multi_head_attention embedding index index_select gather scatter scatter_add
pixel_shuffle pixel_unshuffle stack
""".split()

_IGNORED = """
_assert_tensor_metadata _assert_scalar _assert_async _functional_assert_async sym_size sym_numel
sym_stride sym_constrain_range sym_constrain_range_for_size
""".split()

_CREATION = "zeros ones full empty arange new_zeros new_ones new_full new_empty scalar_tensor tensor rand randn randint linspace eye".split()

RULES = {name: elementwise.pointwise for name in _POINTWISE}
RULES.update({
    **{n: producers.convolution for n in (
        "conv1d", "conv2d", "conv3d", "convolution", "_convolution",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")},
    "linear": producers.linear,
    "batch_norm": norms.batch_norm,
    "instance_norm": norms.batch_norm,  # per-channel statistics, same arguments
    "layer_norm": norms.layer_norm,
    "group_norm": norms.group_norm,
    "prelu": norms.prelu,
    **{n: shape.reshape for n in ("view", "reshape", "_unsafe_view", "flatten", "unflatten",
                                  "squeeze", "unsqueeze", "view_as", "reshape_as")},
    **{n: shape.permute for n in ("permute", "transpose", "swapaxes", "swapdims", "t")},
    "expand": shape.expand,
    "expand_as": shape.expand,
    **{n: shape.cat for n in ("cat", "concat", "concatenate")},
    **{n: shape.split for n in ("chunk", "split", "split_with_sizes", "unbind")},
    **{n: shape.slice_ for n in ("slice", "narrow", "select")},
    **{n: shape.pad for n in ("pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d",
                              "replication_pad1d", "replication_pad2d")},
    "roll": shape.roll,
    "flip": shape.roll,
    "channel_shuffle": shape.channel_shuffle,
    "native_channel_shuffle": shape.channel_shuffle,
    **{n: reduce.spatial for n in (
        "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d",
        "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
        "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "upsample_nearest1d",
        "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d", "upsample_bicubic2d",
        "upsample_linear1d", "upsample_trilinear3d", "_upsample_nearest_exact2d",
        "_upsample_bilinear2d_aa")},
    **{n: reduce.reduction for n in ("mean", "sum", "amax", "amin", "std", "var", "prod",
                                     "linalg_vector_norm", "norm", "logsumexp", "any", "all")},
    **{n: reduce.along_dim for n in ("softmax", "log_softmax", "_softmax", "_log_softmax",
                                     "cumsum", "cumprod")},
})
MIXING = frozenset(_MIXING)
IGNORED = frozenset(_IGNORED)
CREATION = frozenset(_CREATION)
