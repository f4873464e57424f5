"""Encoder and decoder builders, chosen by ``arch``.

``build_encoder`` maps items of ``input_shape`` to ``out_features`` numbers; ``build_decoder`` maps
``in_features`` numbers back to items of ``output_shape``. Models add what they need on top (two
heads' worth of features for a Gaussian posterior, a one-hot label for conditioning).
"""

from __future__ import annotations

from torch import nn

from autoencoders.nn.acai import ACAIDecoder, ACAIEncoder
from autoencoders.nn.conv import ConvDecoder, ConvEncoder
from autoencoders.nn.mlp import MLPDecoder, MLPEncoder
from autoencoders.nn.recurrent import ConvRecurrentDecoder, ConvRecurrentEncoder, RecurrentDecoder, RecurrentEncoder
from autoencoders.nn.spatial import SpatialDecoder, SpatialEncoder

ARCHS = {
    "mlp": "fully connected layers on the flattened item (any shape); --hidden sets the widths",
    "conv": "stride-2 convolutions / transposed convolutions sized from the image; --hidden sets the channels",
    "acai": "the ACAI paper's network: per scale two 3x3 convs + average pooling; depth and scales settings",
    "rnn": "GRU/LSTM layers over sequences (length, channels); --hidden sets the widths, --set cell=lstm the cell",
    "crnn": "a conv network per frame and a GRU/LSTM across frames, for sequences of images (length, C, H, W); "
    "--hidden is the conv channels then the recurrent width",
    "spatial": "fully convolutional: the code is a small feature map (latent_dim = channels x H/2^s x W/2^s), as in "
    "learned image compression; --hidden sets the channels of the s stride-2 stages",
}
DEFAULT_HIDDEN = {"mlp": (512, 256), "conv": (32, 64), "acai": (), "rnn": (128,), "crnn": (32, 64, 256), "spatial": (32, 32)}


def _check_arch(arch: str) -> None:
    if arch == "custom":
        raise ValueError("arch 'custom' names networks their user gave (Model.with_networks): build it that way, with the modules")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def hidden_or_default(arch: str, hidden: tuple[int, ...]) -> tuple[int, ...]:
    _check_arch(arch)
    return tuple(hidden) or DEFAULT_HIDDEN[arch]


def build_encoder(config, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
    """``config`` carries ``arch``, ``hidden``, ``depth``, ``scales`` and ``cell`` (a ModelConfig)."""
    hidden = hidden_or_default(config.arch, config.hidden)
    if config.arch == "mlp":
        return MLPEncoder(input_shape, hidden, out_features)
    if config.arch == "conv":
        return ConvEncoder(input_shape, hidden, out_features)
    if config.arch == "rnn":
        return RecurrentEncoder(input_shape, hidden, out_features, config.cell)
    if config.arch == "crnn":
        return ConvRecurrentEncoder(input_shape, hidden, out_features, config.cell)
    if config.arch == "spatial":
        return SpatialEncoder(input_shape, hidden, out_features)
    return ACAIEncoder(input_shape, config.depth, config.scales, out_features)


def build_decoder(config, in_features: int, output_shape: tuple[int, ...]) -> nn.Module:
    hidden = hidden_or_default(config.arch, config.hidden)
    if config.arch == "mlp":
        return MLPDecoder(in_features, hidden, output_shape)
    if config.arch == "conv":
        return ConvDecoder(in_features, hidden, output_shape)
    if config.arch == "rnn":
        return RecurrentDecoder(in_features, hidden, output_shape, config.cell)
    if config.arch == "crnn":
        return ConvRecurrentDecoder(in_features, hidden, output_shape, config.cell)
    if config.arch == "spatial":
        return SpatialDecoder(in_features, hidden, output_shape)
    return ACAIDecoder(in_features, config.depth, config.scales, output_shape)
