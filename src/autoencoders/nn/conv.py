"""Convolutional encoder and decoder: stride-2 convolutions down, stride-2 transposed convolutions up.

Sizes follow the image: each stage halves height and width (rounding down); the decoder records those
sizes and uses ``output_padding`` so that odd sizes (28 -> 14 -> 7 -> 3) come back exactly.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def stage_sizes(size: tuple[int, int], stages: int) -> list[tuple[int, int]]:
    sizes = [size]
    for _ in range(stages):
        height, width = sizes[-1]
        if height < 2 or width < 2:
            raise ValueError(
                f"image {size[0]}x{size[1]} is too small for {stages} stride-2 stages; use fewer channels "
                "in --hidden (one stage per entry)"
            )
        sizes.append((height // 2, width // 2))
    return sizes


class ConvEncoder(nn.Sequential):
    def __init__(self, input_shape: tuple[int, ...], channels: tuple[int, ...], out_features: int):
        if len(input_shape) != 3:
            raise ValueError(f"the conv arch needs images (C, H, W); got items of shape {input_shape}")
        in_channels, height, width = input_shape
        bottom = stage_sizes((height, width), len(channels))[-1]
        layers: list[nn.Module] = []
        for channels_in, channels_out in zip((in_channels, *channels[:-1]), channels):
            layers += [nn.Conv2d(channels_in, channels_out, 4, stride=2, padding=1), nn.ReLU()]
        flat = channels[-1] * bottom[0] * bottom[1]
        super().__init__(*layers, nn.Flatten(), nn.Linear(flat, out_features))


class ConvDecoder(nn.Module):
    def __init__(self, in_features: int, channels: tuple[int, ...], output_shape: tuple[int, ...]):
        super().__init__()
        out_channels, height, width = output_shape
        sizes = stage_sizes((height, width), len(channels))
        self.bottom_shape = (channels[-1], *sizes[-1])
        self.project = nn.Sequential(nn.Linear(in_features, math.prod(self.bottom_shape)), nn.ReLU())
        layers: list[nn.Module] = []
        targets = list(reversed(sizes[:-1]))
        for index, (channels_in, channels_out) in enumerate(zip(reversed(channels), (*reversed(channels[:-1]), out_channels))):
            source = sizes[len(channels) - index]
            target = targets[index]
            padding = (target[0] - 2 * source[0], target[1] - 2 * source[1])
            layers.append(nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, output_padding=padding))
            if index < len(channels) - 1:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(self.project(z).view(-1, *self.bottom_shape))
