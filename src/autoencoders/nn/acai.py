"""The convolutional network of the ACAI paper (Berthelot et al. 2018).

Encoder: a 1x1 convolution to ``depth`` channels; per scale two 3x3 convolutions with leaky ReLU and a 2x2
average pooling, channels doubling per scale; then a 3x3 convolution and a linear 3x3 convolution to the
latent channels. The code is that bottom feature map, flattened: ``latent_dim`` = latent channels x
(H / 2^scales) x (W / 2^scales). The decoder mirrors it with nearest-neighbour upsampling. Images whose
sides are not multiples of 2^scales are padded (edge values repeated) and the output cropped back.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv(channels_in: int, channels_out: int, kernel: int = 3, activation: bool = True) -> list[nn.Module]:
    conv = nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2)
    # He initialization for leaky ReLU keeps the signal's scale through the ~12 layers; PyTorch's default
    # shrinks it about 3x per layer, so that at the start every input gives nearly the same output
    nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
    nn.init.zeros_(conv.bias)
    return [conv, nn.LeakyReLU(0.2)] if activation else [conv]


def padding(input_shape: tuple[int, ...], scales: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that makes the image divisible by 2^scales (28x28 -> 32x32)."""
    if len(input_shape) != 3:
        raise ValueError(f"the acai arch needs images (C, H, W); got items of shape {input_shape}")
    _, height, width = input_shape
    factor = 2**scales
    extra_height, extra_width = -height % factor, -width % factor
    return extra_width // 2, extra_width - extra_width // 2, extra_height // 2, extra_height - extra_height // 2


def bottom_size(input_shape: tuple[int, ...], scales: int) -> tuple[int, int]:
    """The latent map's height and width: the (padded) image halved ``scales`` times."""
    left, right, top, bottom = padding(input_shape, scales)
    _, height, width = input_shape
    return (height + top + bottom) >> scales, (width + left + right) >> scales


def latent_channels(features: int, input_shape: tuple[int, ...], scales: int) -> int:
    height, width = bottom_size(input_shape, scales)
    if features % (height * width):
        raise ValueError(
            f"the acai arch keeps a {height}x{width} latent map, so the code size must be a multiple of "
            f"{height * width}; got {features}. Try --latent-dim {height * width * max(1, features // (height * width))}"
        )
    return features // (height * width)


class ACAIEncoder(nn.Sequential):
    def __init__(self, input_shape: tuple[int, ...], depth: int, scales: int, out_features: int):
        out_channels = latent_channels(out_features, input_shape, scales)
        # images not divisible by 2^scales are padded by repeating their edge (the paper pads MNIST to 32x32)
        sides = padding(input_shape, scales)
        layers: list[nn.Module] = [nn.ReplicationPad2d(sides)] if any(sides) else []
        layers += _conv(input_shape[0], depth, kernel=1)
        channels = depth
        for scale in range(scales):
            layers += _conv(channels, depth << scale) + _conv(depth << scale, depth << scale)
            layers.append(nn.AvgPool2d(2))
            channels = depth << scale
        layers += _conv(channels, depth << scales) + _conv(depth << scales, out_channels, activation=False)
        super().__init__(*layers, nn.Flatten())


class ACAIDecoder(nn.Module):
    def __init__(self, in_features: int, depth: int, scales: int, output_shape: tuple[int, ...]):
        super().__init__()
        height, width = bottom_size(output_shape, scales)
        area = height * width
        # A code that is not a whole latent map (e.g. a code with a one-hot label appended) is first
        # projected to one.
        channels = in_features // area if in_features % area == 0 else depth << scales
        self.project = nn.Identity() if in_features % area == 0 else nn.Linear(in_features, channels * area)
        self.latent_shape = (channels, height, width)
        layers: list[nn.Module] = []
        for scale in range(scales - 1, -1, -1):
            layers += _conv(channels, depth << scale) + _conv(depth << scale, depth << scale)
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            channels = depth << scale
        layers += _conv(channels, depth) + _conv(depth, output_shape[0], activation=False)
        self.layers = nn.Sequential(*layers)
        self.crop = padding(output_shape, scales)  # undoes the encoder's padding
        self.output_size = tuple(output_shape[1:])

    def forward(self, z: Tensor) -> Tensor:
        decoded = self.layers(self.project(z).view(-1, *self.latent_shape))
        left, _, top, _ = self.crop
        height, width = self.output_size
        return decoded[:, :, top : top + height, left : left + width]
