"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017) with a gated PixelCNN prior over its code grid.

A convolutional encoder maps an image to a grid of D-dimensional vectors z_e (28x28 -> 7x7 with two stride-2
stages). Each vector is replaced by its nearest entry of a codebook of K vectors; the decoder sees only those
entries, so an image is stored as H·W integers, H·W·log2(K) bits. Training (player ``autoencoder``):

- reconstruction through the straight-through estimator: the decoder's gradient is copied onto z_e;
- commitment β·‖z_e − sg[e]‖² keeps the encoder close to its chosen entries (β = 0.25);
- the codebook is not learned by gradient but as an exponential moving average of the vectors assigned to
  each entry (decay 0.99, Laplace-smoothed counts; appendix A.1 of the paper);
- dead-code restarts: an entry whose moving-average count falls below ``dead_code_threshold`` vectors per
  batch is re-seeded with an encoder output of the current batch (as in Jukebox, Dhariwal et al. 2020).
  The counts start at zero, so the first batch seeds the whole codebook from data.

Codebook usage (share of entries used by the batch) and perplexity (exp of the entropy of the code
frequencies: K when all entries are used equally) are returned with the losses, so they are logged.

The prior (player ``prior``) is a gated PixelCNN (van den Oord et al. 2016, vertical and horizontal stacks,
no blind spot) over the integer grid, trained by cross-entropy on the codes of each batch. As in the paper it
is trained after the autoencoder: the autoencoder steps on batches [0, ``prior_start``), the prior from
``prior_start`` on, on the codes of the then fixed encoder and codebook (so ``max_steps`` counts both phases).
``sample`` draws a grid code by code (raster order, ``temperature`` divides the logits) and decodes it.

``encode`` gives the integer grid flattened in raster order, shape (N, H·W), dtype int64; ``decode`` takes
that (or (N, H, W), or floats that hold whole numbers, as read back from a .npy or .parquet file).
``interpolate`` mixes the continuous codebook vectors of two items (``quantize``) and decodes the mixtures
with ``decode_vectors``.
"""

from __future__ import annotations

from typing import ClassVar

import itertools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.losses import reconstruction_loss
from autoencoders.models.base import INTERPOLATION_MODES, Autoencoder, ModelConfig, Output, Player, slerp
from autoencoders.nn.conv import stage_sizes

DEFAULT_CHANNELS = (64, 64)


@dataclass
class VQVAEConfig(ModelConfig):
    arch: str = "conv"  # the VQ-VAE has its own convolutional encoder/decoder; conv is the only choice
    latent_dim: int = 16  # D: size of each codebook vector
    hidden: tuple[int, ...] = ()  # channels of the stride-2 stages (one stage per entry); () is (64, 64)
    codebook_size: int = 64  # K: entries of the codebook; a code is log2(K) bits
    residual_blocks: int = 2  # 3x3 -> 1x1 residual blocks at the grid's resolution, in encoder and decoder
    commitment: float = 0.25  # β
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5  # Laplace smoothing of the moving-average counts
    dead_code_threshold: float = 1.0  # re-seed entries whose average count per batch falls below this
    prior_start: int = 2000  # steps of the autoencoder; the prior trains from this step on, on fixed codes
    prior_channels: int = 64
    prior_layers: int = 8  # gated layers; the first has a 7x7 kernel, the others 3x3
    prior_lr: float | None = None  # None: the training learning rate
    temperature: float = 1.0  # sampling: the prior's logits are divided by it (< 1: safer, less varied)

    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "codebook_size": (2, 2**16), "residual_blocks": (0, 64), "prior_start": (1, 2**40),
        "prior_layers": (1, 64), "prior_channels": (1, 2**16),
    }
    search_space: ClassVar[dict[str, dict]] = {
        **ModelConfig.search_space, "codebook_size": {"type": "categorical", "choices": [32, 64, 128, 256, 512]}, "commitment": {"type": "float", "low": 0.1, "high": 1.0, "log": True},
    }


# -- the network -------------------------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), the paper's residual block."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, inner, 3, padding=1), nn.ReLU(), nn.Conv2d(inner, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class GridEncoder(nn.Sequential):
    """Stride-2 4x4 convolutions, a 3x3 convolution, residual blocks, then 1x1 to D channels."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int, out_channels: int):
        layers: list[nn.Module] = []
        for channels_in, channels_out in zip((in_channels, *channels[:-1]), channels):
            layers += [nn.Conv2d(channels_in, channels_out, 4, stride=2, padding=1), nn.ReLU()]
        width = channels[-1]
        layers.append(nn.Conv2d(width, width, 3, padding=1))
        layers += [ResidualBlock(width, max(width // 2, 1)) for _ in range(blocks)]
        layers += [nn.ReLU(), nn.Conv2d(width, out_channels, 1)]
        super().__init__(*layers)


class GridDecoder(nn.Sequential):
    """The encoder mirrored; transposed convolutions with ``output_padding`` restore odd sizes (7 -> 14 -> 28)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int, output_shape: tuple[int, ...]):
        out_channels, height, width = output_shape
        sizes = stage_sizes((height, width), len(channels))
        top = channels[-1]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, top, 3, padding=1)]
        layers += [ResidualBlock(top, max(top // 2, 1)) for _ in range(blocks)]
        layers.append(nn.ReLU())
        outs = (*reversed(channels[:-1]), out_channels)
        for index, (channels_in, channels_out) in enumerate(zip(reversed(channels), outs)):
            source, target = sizes[len(channels) - index], sizes[len(channels) - index - 1]
            padding = (target[0] - 2 * source[0], target[1] - 2 * source[1])
            layers.append(nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1, output_padding=padding))
            if index < len(channels) - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)


# -- the codebook ------------------------------------------------------------------------------------------
class EMACodebook(nn.Module):
    """K vectors of size D, updated as moving averages of the encoder outputs assigned to them.

    Buffers (saved with the weights): ``vectors`` (K, D), ``counts`` (K,) the moving-average number of
    vectors per batch assigned to each entry, ``sums`` (K, D) the moving average of their sum.
    """

    def __init__(self, size: int, dim: int, decay: float, epsilon: float, dead_threshold: float):
        super().__init__()
        self.size, self.decay, self.epsilon, self.dead_threshold = size, decay, epsilon, dead_threshold
        self.register_buffer("vectors", torch.randn(size, dim))
        self.register_buffer("counts", torch.zeros(size))  # zero: the first update seeds every entry from data
        self.register_buffer("sums", torch.zeros(size, dim))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the closest entry (squared Euclidean distance) for each row of ``flat`` (N, D)."""
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.vectors.t() + self.vectors.pow(2).sum(1).unsqueeze(0)
        )
        return distances.argmin(1)

    @torch.no_grad()
    def update(self, flat: Tensor, indices: Tensor) -> Tensor:
        """One EMA step on a batch of encoder outputs (N, D) and their entries; returns the batch's counts."""
        assigned = F.one_hot(indices, self.size).type(flat.dtype)
        batch_counts, batch_sums = assigned.sum(0), assigned.t() @ flat
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_counts)  # every process keeps the same codebook
            torch.distributed.all_reduce(batch_sums)
        self.counts.mul_(self.decay).add_(batch_counts, alpha=1 - self.decay)
        self.sums.mul_(self.decay).add_(batch_sums, alpha=1 - self.decay)
        total = self.counts.sum()
        smoothed = (self.counts + self.epsilon) / (total + self.size * self.epsilon) * total
        self.vectors.copy_(self.sums / smoothed.unsqueeze(1))
        self._restart_dead(flat)
        return batch_counts

    def _restart_dead(self, flat: Tensor) -> None:
        """Entries that (almost) nothing chooses take a random encoder output of this batch instead.

        Done with ``torch.where`` (no host synchronisation); a restarted entry gets the threshold as its count,
        so it has a few batches to attract vectors before it can be restarted again.
        """
        dead = (self.counts < self.dead_threshold).unsqueeze(1)
        seeds = flat[torch.randint(flat.shape[0], (self.size,), device=flat.device)]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(seeds, 0)
        self.vectors.copy_(torch.where(dead, seeds, self.vectors))
        self.sums.copy_(torch.where(dead, seeds * self.dead_threshold, self.sums))
        self.counts.copy_(torch.where(dead.squeeze(1), torch.full_like(self.counts, self.dead_threshold), self.counts))


# -- the prior ---------------------------------------------------------------------------------------------
class GatedLayer(nn.Module):
    """One gated PixelCNN layer with a vertical stack (rows above) and a horizontal stack (left in the row).

    The vertical stack sees rows ≤ i and reaches the horizontal stack shifted down by one row, so position
    (i, j) depends only on rows < i and on (i, < j); the first layer's horizontal convolution excludes the
    position itself (mask A), the later ones include it (mask B), which is safe as their input already
    excludes it. tanh(a)·σ(b) gates both stacks; the horizontal stack is residual after the first layer.
    """

    def __init__(self, channels: int, kernel: int, first: bool):
        super().__init__()
        self.half, self.first = kernel // 2, first
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        mask = torch.ones_like(self.horizontal.weight)
        if first:
            mask[..., -1] = 0  # mask A: not the position itself
        self.register_buffer("horizontal_mask", mask, persistent=False)

    @staticmethod
    def gate(x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, vertical: Tensor, horizontal: Tensor) -> tuple[Tensor, Tensor]:
        v = self.vertical(F.pad(vertical, (self.half, self.half, self.half, 0)))  # rows i-half .. i
        v_shifted = F.pad(v, (0, 0, 1, 0))[:, :, :-1]  # rows < i
        h = F.conv2d(F.pad(horizontal, (self.half, 0, 0, 0)), self.horizontal.weight * self.horizontal_mask, self.horizontal.bias)
        h = self.horizontal_out(self.gate(h + self.vertical_to_horizontal(v_shifted)))
        return self.gate(v), (h if self.first else horizontal + h)


class GatedPixelCNN(nn.Module):
    """Logits (N, K, H, W) of p(code at (i, j) | codes before it in raster order)."""

    def __init__(self, codebook_size: int, channels: int, layers: int):
        super().__init__()
        if layers < 1:
            raise ValueError(f"prior_layers must be at least 1; got {layers}")
        self.embedding = nn.Embedding(codebook_size, channels)
        self.layers = nn.ModuleList(GatedLayer(channels, 7 if index == 0 else 3, first=index == 0) for index in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, codebook_size, 1))

    def forward(self, grid: Tensor) -> Tensor:
        x = self.embedding(grid).permute(0, 3, 1, 2)
        vertical = horizontal = x
        for layer in self.layers:
            vertical, horizontal = layer(vertical, horizontal)
        return self.head(horizontal)


# -- the model ---------------------------------------------------------------------------------------------
class VQVAE(Autoencoder):
    name = "vqvae"
    config_class = VQVAEConfig
    generative = True

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        if config.arch != "conv":
            raise ValueError(f"the VQ-VAE has its own convolutional encoder and decoder: use --arch conv (got {config.arch!r})")
        if len(config.input_shape) != 3:
            raise ValueError(f"the VQ-VAE encodes images (C, H, W) to a grid of codes; got items of shape {tuple(config.input_shape)}")
        if not 0.0 < config.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie strictly between 0 and 1; got {config.ema_decay}")
        if config.temperature <= 0:
            raise ValueError(f"temperature must be positive; got {config.temperature}")
        channels = tuple(config.hidden) or DEFAULT_CHANNELS
        self.grid = stage_sizes(tuple(config.input_shape[1:]), len(channels))[-1]
        self.encoder = GridEncoder(config.input_shape[0], channels, config.residual_blocks, config.latent_dim)
        self.decoder = GridDecoder(config.latent_dim, channels, config.residual_blocks, tuple(config.input_shape))
        self.codebook = EMACodebook(
            config.codebook_size, config.latent_dim, config.ema_decay, config.ema_epsilon, config.dead_code_threshold
        )
        self.prior = GatedPixelCNN(config.codebook_size, config.prior_channels, config.prior_layers)
        self.register_buffer("prior_steps", torch.zeros((), dtype=torch.long))  # sample() warns if it is still 0

    @property
    def code_size(self) -> int:
        """Integers per item: one codebook index per grid position."""
        return self.grid[0] * self.grid[1]

    @property
    def bits_per_item(self) -> float:
        """Size of a code: H·W indices of log2(K) bits each."""
        return self.code_size * math.log2(self.config.codebook_size)

    # -- quantization --------------------------------------------------------------------------------------
    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z_e (N, D, H, W), codebook vectors z_q of the same shape, indices (N, H, W))."""
        z_e = self.encoder(x)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        indices = self.codebook.nearest(flat.detach())
        return z_e, self.vectors_of(indices.view(z_e.shape[0], *self.grid)), indices.view(z_e.shape[0], *self.grid)

    def vectors_of(self, grid: Tensor) -> Tensor:
        """Codebook vectors (N, D, H, W) of an index grid (N, H, W)."""
        return F.embedding(grid, self.codebook.vectors).permute(0, 3, 1, 2)

    def _as_grid(self, z: Tensor) -> Tensor:
        """Integer codes in any accepted form -> an int64 grid (N, H, W), checked."""
        if z.dim() == 2 and z.shape[1] == self.code_size:
            z = z.view(z.shape[0], *self.grid)
        if z.dim() != 3 or tuple(z.shape[1:]) != self.grid:
            raise ValueError(
                f"VQ-VAE codes are integer grids: shape (N, {self.code_size}) in raster order or (N, {self.grid[0]}, "
                f"{self.grid[1]}); got {tuple(z.shape)}"
            )
        if z.is_floating_point() and not torch.equal(z, z.round()):
            raise ValueError("VQ-VAE codes are codebook indices (whole numbers); to decode continuous vectors use decode_vectors")
        z = z.long()
        if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.config.codebook_size):
            raise ValueError(f"codebook indices must lie in 0..{self.config.codebook_size - 1}; got {int(z.min())}..{int(z.max())}")
        return z

    # -- the interface -------------------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Codebook indices, (N, H·W) int64 in raster order."""
        return self.quantize(x)[2].flatten(1)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(self.vectors_of(self._as_grid(z)))

    def decode_vectors(self, vectors: Tensor) -> Tensor:
        """Continuous vectors (N, D, H, W), e.g. mixtures of codebook vectors, to data space."""
        return self.to_data_space(self.decoder(vectors))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z_e, z_q, indices = self.quantize(x)
        straight_through = z_e + (z_q - z_e).detach()  # forward: z_q; backward: the gradient goes to z_e
        return Output(decoded=self.decoder(straight_through), latent=z_q, extras={"z_e": z_e, "indices": indices})

    def autoencoder_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        output = self(x)
        z_e, z_q, indices = output.extras["z_e"], output.latent, output.extras["indices"]
        recon = reconstruction_loss(output.decoded, x, self.config.recon_loss).mean()
        commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1).mean()
        flat_indices = indices.flatten()
        if self.training and torch.is_grad_enabled():
            counts = self.codebook.update(z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]), flat_indices)
        else:
            counts = torch.bincount(flat_indices, minlength=self.config.codebook_size).to(z_e.dtype)
        if state is not None:  # the prior's targets
            state["codes"] = indices.detach()
        frequencies = counts / counts.sum()
        perplexity = torch.exp(-(frequencies * torch.log(frequencies + 1e-10)).sum())
        usage = (counts > 0).to(z_e.dtype).mean()
        return {
            "loss": recon + self.config.commitment * commitment, "recon": recon, "commitment": commitment,
            "perplexity": perplexity, "usage": usage,
        }

    def prior_loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        """Cross-entropy of the PixelCNN on the batch's codes (those the autoencoder player put in ``state``, when there)."""
        grid = state.get("codes") if state is not None else None
        if grid is None:
            with torch.no_grad():
                grid = self.quantize(x)[2]
        nats = F.cross_entropy(self.prior(grid), grid)  # mean over items and positions
        if self.training and torch.is_grad_enabled():
            self.prior_steps += 1
        return {"loss": nats, "nll": nats * self.code_size, "bits_per_code": nats / math.log(2)}

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        return self.autoencoder_loss(x, y, step, state)

    def players(self) -> dict[str, Player]:
        return {
            "autoencoder": Player(
                lambda: itertools.chain(self.encoder.parameters(), self.decoder.parameters()), self.autoencoder_loss,
                stop=self.config.prior_start,
            ),
            "prior": Player(self.prior.parameters, self.prior_loss, lr=self.config.prior_lr, start=self.config.prior_start),
        }

    # -- uses ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, n: int, temperature: float | None = None) -> Tensor:
        """``n`` index grids (n, H, W) drawn from the prior, position by position in raster order."""
        if int(self.prior_steps) == 0:
            warnings.warn(
                f"this VQ-VAE's prior was never trained (it starts at step prior_start={self.config.prior_start}): "
                "the samples are noise. Train longer (--max-steps) or set a lower --prior-start",
                stacklevel=2,
            )
        temperature = self.config.temperature if temperature is None else temperature
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}")
        device = self.codebook.vectors.device
        grid = torch.zeros(n, *self.grid, dtype=torch.long, device=device)
        for row in range(self.grid[0]):
            for column in range(self.grid[1]):
                # row ``row`` of the output depends on rows <= row only: the rows below need not be computed
                logits = self.prior(grid[:, : row + 1])[:, :, row, column] / temperature
                grid[:, row, column] = torch.multinomial(F.softmax(logits, dim=1), 1).squeeze(1)
        return grid

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, temperature: float | None = None) -> Tensor:
        """New items: codes from the PixelCNN prior (``temperature`` defaults to the config's), decoded."""
        return self.decode(self.sample_codes(n, temperature).flatten(1))

    @torch.no_grad()
    def interpolate(
        self, x1: Tensor, x2: Tensor, steps: int = 10, y1: Tensor | None = None, y2: Tensor | None = None,
        mode: str = "linear",
    ) -> Tensor:
        """Decoded mixtures of the two items' codebook vectors, position by position, not re-quantized.

        ``mode`` "linear" mixes the vectors on straight lines, "slerp" on arcs; shapes as ``Autoencoder``.
        """
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"unknown interpolation mode {mode!r}; choose one of {', '.join(INTERPOLATION_MODES)}")
        single = x1.dim() == len(self.config.input_shape)
        if single:
            x1, x2 = x1.unsqueeze(0), x2.unsqueeze(0)
        # (1, batch, H, W, D): the mixing acts on each position's D-dimensional vector
        v1 = self.quantize(x1)[1].permute(0, 2, 3, 1).unsqueeze(0)
        v2 = self.quantize(x2)[1].permute(0, 2, 3, 1).unsqueeze(0)
        alphas = torch.linspace(0.0, 1.0, steps, device=v1.device).view(-1, 1, 1, 1, 1)
        mixtures = slerp(v1, v2, alphas) if mode == "slerp" else (1 - alphas) * v1 + alphas * v2
        frames = self.decode_vectors(mixtures.flatten(0, 1).permute(0, 3, 1, 2)).unflatten(0, (steps, x1.shape[0]))
        return frames[:, 0] if single else frames
