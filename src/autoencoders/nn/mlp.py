"""Fully connected encoder and decoder: any item shape, flattened."""

from __future__ import annotations

import math

from torch import Tensor, nn


def _stack(widths: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return layers


class MLPEncoder(nn.Sequential):
    def __init__(self, input_shape: tuple[int, ...], hidden: tuple[int, ...], out_features: int):
        widths = [math.prod(input_shape), *hidden]
        super().__init__(nn.Flatten(), *_stack(widths), nn.Linear(widths[-1], out_features))


class MLPDecoder(nn.Module):
    def __init__(self, in_features: int, hidden: tuple[int, ...], output_shape: tuple[int, ...]):
        super().__init__()
        widths = [in_features, *reversed(hidden)]
        self.output_shape = tuple(output_shape)
        self.layers = nn.Sequential(*_stack(widths), nn.Linear(widths[-1], math.prod(output_shape)))

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z).view(-1, *self.output_shape)
