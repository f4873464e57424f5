"""Fully convolutional encoder and decoder whose code is a small feature map (flattened), not a vector.

As in learned image compression (Ballé et al. 2017), every number of the code describes a neighbourhood of
the image: stride-2 convolutions down to a map of ``channels x H/2^s x W/2^s`` (s = stages, one per
``hidden`` entry), transposed convolutions back up. No fully connected layer, so few weights and fast
training; the code size must be a whole number of channels at the bottom size.
"""

from __future__ import annotations

from torch import Tensor, nn

from autoencoders.nn.conv import stage_sizes


def code_channels(input_shape: tuple[int, ...], stages: int, features: int) -> tuple[int, tuple[int, int]]:
    """Channels and (height, width) of the code map that holds ``features`` numbers."""
    if len(input_shape) != 3:
        raise ValueError(f"the spatial arch needs images (C, H, W); got items of shape {input_shape}")
    height, width = stage_sizes(tuple(input_shape[1:]), stages)[-1]
    if features % (height * width):
        raise ValueError(
            f"the spatial arch's code is a {height}x{width} map per channel: the latent size must be a multiple "
            f"of {height * width} (e.g. --latent-dim {8 * height * width} for 8 channels); got {features}"
        )
    return features // (height * width), (height, width)


class SpatialEncoder(nn.Sequential):
    def __init__(self, input_shape: tuple[int, ...], channels: tuple[int, ...], out_features: int):
        out_channels, _ = code_channels(input_shape, len(channels), out_features)
        layers: list[nn.Module] = []
        for channels_in, channels_out in zip((input_shape[0], *channels[:-1]), channels):
            layers += [nn.Conv2d(channels_in, channels_out, 4, stride=2, padding=1), nn.ReLU()]
        super().__init__(*layers, nn.Conv2d(channels[-1], out_channels, 3, padding=1), nn.Flatten())


class SpatialDecoder(nn.Module):
    def __init__(self, in_features: int, channels: tuple[int, ...], output_shape: tuple[int, ...]):
        super().__init__()
        code, bottom = code_channels(output_shape, len(channels), in_features)
        self.code_shape = (code, *bottom)
        sizes = stage_sizes(tuple(output_shape[1:]), len(channels))
        layers: list[nn.Module] = [nn.Conv2d(code, channels[-1], 3, padding=1), nn.ReLU()]
        for index, (channels_in, channels_out) in enumerate(zip(reversed(channels), (*reversed(channels[:-1]), output_shape[0]))):
            source, target = sizes[len(channels) - index], sizes[len(channels) - index - 1]
            padding = (target[0] - 2 * source[0], target[1] - 2 * source[1])
            layers.append(nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, output_padding=padding))
            if index < len(channels) - 1:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z.view(-1, *self.code_shape))
