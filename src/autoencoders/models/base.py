"""The small interface every model family shares.

A model is a plain ``nn.Module``: it knows how to encode, decode and score a batch, never how to be trained.
Its ``config`` (a dataclass) plus its weights rebuild it exactly; ``players()`` names the parameter groups the
generic training module steps, each on its own loss, in order, every batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import torch
from torch import Tensor, nn

from autoencoders.errors import short_repr
from autoencoders.losses import RECON_LOSSES


# Bounds that keep a setting from a file or a flag from allocating or looping without end before anything else
# can check it: integers not named in a config's ``bounds`` lie in [0, MAX_INT_SETTING].
MAX_INT_SETTING = 2**20
MAX_ITEM_NUMBERS = 2**26  # numbers in one item (input_shape's product): a 3 x 4096 x 4096 image is 2**25.6
ENCODE_BATCH = 1024  # items per batch when a whole split is encoded (memory stays small, the CPU stays busy)
CUSTOM_ARCH = "custom"  # the arch of a model whose networks its user gave (Autoencoder.with_networks)


@dataclass
class ModelConfig:
    """Fields every family shares. Families subclass it and add their own (``beta``, ``noise`` ...).

    Every field is checked against its annotation and ``bounds`` when the config is made, so a bad value from a
    flag or a ``config.json`` is refused with its name before any network is built."""

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    arch: str = "mlp"  # mlp | conv | spatial | acai | rnn | crnn  (see autoencoders.nn)
    hidden: tuple[int, ...] = ()  # widths (mlp) or channels (conv); () takes the arch's default
    depth: int = 16  # acai: channels after the first 1x1 convolution
    scales: int = 3  # acai: number of 2x down/up-sampling stages
    cell: str = "gru"  # rnn, crnn and vrnn: the recurrent cell, gru | lstm
    recon_loss: str = "mse"  # mse | l1 | bce | hamming
    value_range: tuple[float, float] = (0.0, 1.0)  # of the data; corruption and pictures use it
    num_classes: int = 0  # > 0 for label-conditioned models

    recon_losses: ClassVar[tuple[str, ...]] = RECON_LOSSES  # what recon_loss may name in this family
    # (lowest, highest) allowed value of numeric fields, and of each entry of integer tuples; subclasses extend it
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        "input_shape": (1, MAX_ITEM_NUMBERS), "latent_dim": (1, MAX_INT_SETTING), "hidden": (1, 2**16),
        "depth": (1, 2**16), "scales": (1, 16), "num_classes": (0, MAX_INT_SETTING),
    }
    # what `autoencoders tune` searches by default (YAML's form: float | int | categorical, low/high, log, choices);
    # families extend it with their own weights (β, γ, λ ...), training adds lr and batch_size
    search_space: ClassVar[dict[str, dict]] = {"latent_dim": {"type": "int", "low": 2, "high": 64, "log": True}}

    def __post_init__(self) -> None:
        check_settings(self, type(self).bounds, "setting")
        if self.recon_loss not in self.recon_losses:
            raise ValueError(
                f"setting recon_loss names the reconstruction loss (the decoder's likelihood); {type(self).__name__} "
                f"takes one of {', '.join(self.recon_losses)}; got {short_repr(self.recon_loss)}"
            )
        if not 1 <= len(self.input_shape) <= 4 or math.prod(self.input_shape) > MAX_ITEM_NUMBERS:
            raise ValueError(
                f"setting input_shape is an item's shape of 1 to 4 sides with at most {MAX_ITEM_NUMBERS} numbers "
                f"(e.g. [1, 28, 28]); got {short_repr(self.input_shape)}"
            )
        if len(self.hidden) > 64:
            raise ValueError(f"setting hidden lists at most 64 layer widths; got {len(self.hidden)}")
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"setting value_range is [lowest, highest] of the data, lowest < highest; got {list(self.value_range)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(str(name)[:60] for name in unknown[:10])} for {cls.__name__}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


def _fits(kind: str, value: Any) -> bool:
    """Whether ``value`` is of ``kind``, one alternative of a field's annotation (as text)."""
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "tuple[int, ...]":
        return isinstance(value, (list, tuple)) and all(_fits("int", entry) for entry in value)
    if kind == "tuple[float, float]":
        return isinstance(value, (list, tuple)) and len(value) == 2 and all(_fits("float", entry) for entry in value)
    return True  # annotations this check does not know (dicts, modules) are the family's own business


def describe_settings(config_class: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, what it is) of every field of a config dataclass, the last read from the field's
    comment in the source (``beta: float = 1.0  # weight of the KL``), as `train MODEL --help` lists them."""
    import inspect

    comments: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):  # a subclass's comment wins over its parent's
        if dataclasses.is_dataclass(cls):
            for line in inspect.getsource(cls).splitlines():
                name, sep, comment = line.strip().partition("  # ")
                if sep and ":" in name:
                    comments[name.split(":")[0].strip()] = comment.strip()
    return [
        (field_.name, str(field_.type), field_.default if field_.default is not dataclasses.MISSING else None, comments.get(field_.name, ""))
        for field_ in dataclasses.fields(config_class)
    ]


KIND_NAMES = {
    "None": "null", "bool": "true or false", "int": "an integer", "float": "a finite number", "str": "text",
    "tuple[int, ...]": "a list of integers", "tuple[float, float]": "a list of two finite numbers",
}


def check_settings(config: Any, bounds: dict[str, tuple[float, float]], kind: str) -> None:
    """Check every field of the dataclass ``config`` against its annotation and ``bounds``; a list becomes a tuple
    where the field is one. Integers without bounds lie in [0, MAX_INT_SETTING]. Raises ValueError naming the
    field, what it takes and what it got."""
    for field_ in dataclasses.fields(config):
        name, value = field_.name, getattr(config, field_.name)
        kinds = [part.strip() for part in str(field_.type).split("|")]  # annotations are text here
        if not any(_fits(option, value) for option in kinds):
            if isinstance(value, str) and {"int", "float"} & set(kinds):
                raise ValueError(f"{kind} {name} takes a number ({field_.type}); got the text {short_repr(value)}")
            wanted = " or ".join(KIND_NAMES.get(option, option) for option in kinds)
            raise ValueError(f"{kind} {name} takes {wanted}; got {short_repr(value)}")
        if isinstance(value, list):
            value = tuple(value)
            setattr(config, name, value)
        entries = value if isinstance(value, tuple) else (value,)
        numbers = [entry for entry in entries if isinstance(entry, (int, float)) and not isinstance(entry, bool)]
        integers = all(isinstance(entry, int) for entry in numbers)
        low, high = bounds.get(name, (0, MAX_INT_SETTING) if integers else (-math.inf, math.inf))
        if any(not low <= entry <= high for entry in numbers):
            allowed = f"be at least {low}" if high >= 2**30 else f"lie in [{low}, {high}]"
            raise ValueError(f"{kind} {name} must {allowed}; got {short_repr(value)}")


@dataclass
class Player:
    """One optimizer's share of a model: its parameters, its loss, how often it steps.

    The training module calls ``loss(x, y, step=step, state=state)`` with one fresh ``state`` dict per batch,
    the same for every player and every repeat on that batch. A player that computes something a later player
    reuses (codes, decoded mixtures) puts it there, detached where the later player must not train through it;
    the later player reads it from there and computes it itself when it is absent (its loss called alone, or
    ``state`` None). Players share per-batch results only this way, never through attributes of the model.
    """

    parameters: Callable[[], Iterable[nn.Parameter]]
    loss: Callable[..., dict[str, Tensor]]  # (x, y, step, state) -> {"loss": total, other named terms...}
    lr: float | None = None  # None: the training learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    every: int = 1  # step this player on every n-th batch
    repeats: int = 1  # optimizer steps on each batch it steps on (a discriminator trained k times per batch)
    start: int = 0  # the first batch (step) it steps on: a player trained after another (a VQ-VAE's prior) ...
    stop: int | None = None  # ... and the batch it stops before (a VQ-VAE's autoencoder); None: to the end

    def steps_at(self, step: int) -> bool:
        """Whether this player steps on batch ``step``."""
        return step % self.every == 0 and self.start <= step and (self.stop is None or step < self.stop)


@dataclass
class Output:
    """What ``forward`` returns: the decoder's raw output and the code that produced it."""

    decoded: Tensor  # parameters of p(x|z): logits for binary losses, values otherwise
    latent: Tensor  # the code fed to the decoder (a sample for stochastic encoders)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. the posterior's mean and log-variance


class Autoencoder(nn.Module):
    """Base class: subclasses set ``name``, ``config_class`` and implement encode/decode_raw/loss.

    What a family can do beyond the four verbs is declared here, on the class (an instance may set it where its
    config decides, as a supervised AAE does), so that metrics, uses and the report ask the flag, never guess."""

    name: ClassVar[str] = "autoencoder"
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    generative: ClassVar[bool] = False  # True when ``sample`` draws from a prior
    conditional: ClassVar[bool] = False  # True when encode/decode take the label y
    transfers_style: ClassVar[bool] = False  # True when style_transfer(x, labels) draws x's style in other classes
    has_likelihood: ClassVar[bool] = False  # log_importance_weights, log_marginal_likelihood, negative_elbo, kl_divergence
    gaussian_posterior: ClassVar[bool] = False  # posterior(x, y) gives the mean and log-variance of a flat Gaussian code
    has_code_prior: ClassVar[bool] = False  # sample_prior(n) draws codes from the prior the codes are matched to
    denoises: ClassVar[bool] = False  # trained to remove the corruption its config names (noise, noise_level)
    classifies: ClassVar[bool] = False  # predict(x) gives a class or cluster; move(x) the small moves it must survive
    per_item_layers: ClassVar[bool] = True  # the encoder's hidden activations are one row per item (RaPP compares them)
    quantization_step: ClassVar[float | None] = None  # the rounding of the codes it was trained for (compress's default)
    labelled_items: int | None = None  # semi-supervised models: how many training items keep their label

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    # -- the four verbs ---------------------------------------------------------------------------------
    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The deterministic code of ``x`` (the posterior mean for stochastic encoders)."""
        raise NotImplementedError

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder's raw output (logits for binary reconstruction losses)."""
        raise NotImplementedError

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Codes to data space: probabilities for binary losses, values otherwise."""
        return self.to_data_space(self.decode_raw(z, y))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        raise NotImplementedError

    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        """Named loss terms of a batch; ``"loss"`` is the total that is minimised.

        Every loss a player runs, this one included, takes the batch's shared ``state`` (see ``Player``); a model
        whose players share nothing ignores it, and a loss called alone may be given none."""
        raise NotImplementedError

    def players(self) -> dict[str, Player]:
        return {"autoencoder": Player(self.parameters, self.loss)}

    @property
    def uses_labels(self) -> bool:
        """Whether training batches must carry labels (conditional and (semi-)supervised models)."""
        return self.conditional or self.labelled_items is not None

    @property
    def code_size(self) -> int:
        """Numbers per item that ``encode`` gives and ``decode`` takes."""
        return self.config.latent_dim

    @property
    def sample_classes(self) -> int:
        """How many classes ``sample(n, y)`` can be asked for (0: ``y`` is not taken)."""
        return self.config.num_classes if self.conditional else 0

    @classmethod
    def needs_classes(cls, settings: dict[str, Any]) -> bool:
        """Whether a model built from ``settings`` needs the dataset's number of classes (``num_classes``)."""
        return cls.conditional

    @classmethod
    def data_settings(cls, dataset, settings: dict[str, Any]) -> dict[str, Any]:
        """Config fields a model built from ``settings`` takes from its training data (e.g. ``dataset_size``)."""
        return {}

    # -- uses built on the verbs ------------------------------------------------------------------------
    @property
    def binary_output(self) -> bool:
        return self.config.recon_loss in ("bce", "hamming")

    def to_data_space(self, decoded: Tensor) -> Tensor:
        return torch.sigmoid(decoded) if self.binary_output else decoded

    def save_pretrained(self, folder) -> None:
        """Write ``config.json`` and ``model.safetensors`` to ``folder`` (atomically)."""
        from autoencoders.io import save_model

        save_model(self, folder)

    @classmethod
    def from_pretrained(cls, folder, encoder: nn.Module | None = None, decoder: nn.Module | None = None) -> "Autoencoder":
        """Rebuild a model saved by ``save_pretrained`` (or a run folder); it must be of this family. A model made
        ``with_networks`` needs the same encoder and decoder modules again (their weights come from the file)."""
        from autoencoders.io import load

        return load(folder, expected=None if cls is Autoencoder else cls.name, encoder=encoder, decoder=decoder)

    @classmethod
    def with_networks(cls, config: ModelConfig, encoder: nn.Module | None = None, decoder: nn.Module | None = None) -> "Autoencoder":
        """This family with your own encoder and/or decoder in place of the ones ``config.arch`` builds (as pythae
        allows). Each must take what the family's own network takes and give the same shape, which is checked on
        a batch of zeros: a VAE's encoder gives 2 x latent_dim numbers per item (the mean, then the log-variance),
        its decoder takes latent_dim (+ num_classes when conditional) and gives items. The config then records
        arch "custom", and ``from_pretrained`` needs the same modules again."""
        networks = {"encoder": encoder, "decoder": decoder}
        default_arch = next(field_.default for field_ in dataclasses.fields(config) if field_.name == "arch")
        model = cls(dataclasses.replace(config, arch=default_arch if config.arch == CUSTOM_ARCH else config.arch))
        shapes = model._network_shapes([name for name, module in networks.items() if module is not None])
        for name, module in networks.items():
            if module is None:
                continue
            given_input, expected_output = shapes[name]
            with torch.no_grad():
                output = module.eval()(torch.zeros(given_input))
            if tuple(output.shape) != expected_output:
                raise ValueError(
                    f"the {name} given to {cls.__name__} maps a batch of shape {given_input} to {tuple(output.shape)}; "
                    f"this family needs {expected_output}"
                )
            setattr(model, name, module.train())
        model.config = dataclasses.replace(config, arch=CUSTOM_ARCH)
        return model

    def _network_shapes(self, names: list[str]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """(input shape, output shape) of each named network in one forward pass on a batch of two zero items."""
        shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

        def record(name: str):
            def hook(module, inputs, output) -> None:  # returns None: the output stays as it is
                shapes.setdefault(name, (tuple(inputs[0].shape), tuple(output.shape)))
            return hook

        hooks = []
        for name in names:
            if not isinstance(getattr(self, name, None), nn.Module):
                raise ValueError(f"{type(self).__name__} has no {name} network to replace")
            hooks.append(getattr(self, name).register_forward_hook(record(name)))
        x = torch.zeros(2, *self.config.input_shape)
        y = torch.zeros(2, dtype=torch.long) if self.uses_labels else None
        try:
            with torch.no_grad():
                self.eval()(x, y)
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    @torch.no_grad()
    def encode_batches(
        self, x: Tensor, y: Tensor | None = None, batch_size: int = ENCODE_BATCH, device: str | torch.device | None = None,
    ) -> Tensor:
        """``encode`` over many items, ``batch_size`` at a time on ``device`` (default: the model's), the codes
        gathered on the CPU: the one loop every use that encodes a whole split goes through."""
        device = device or next(self.parameters()).device
        parts = [
            self.encode(x[start : start + batch_size].to(device), None if y is None else y[start : start + batch_size].to(device)).cpu()
            for start in range(0, len(x), batch_size)
        ]
        return torch.cat(parts) if parts else self.encode(x[:0].to(device), None if y is None else y[:0].to(device)).cpu()

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decode(self.encode(x, y), y)

    @torch.no_grad()
    def anomaly_views(self, x: Tensor) -> Tensor:
        """(views, N, numbers): what the ``"isolation"`` anomaly score isolates, the code of each item beside its
        residual (reconstruction minus item); one view here, one per member in an ensemble (bagged-ae)."""
        code = self.encode(x)
        residual = self.decode(code) - x
        return torch.cat([code.flatten(1), residual.flatten(1)], dim=1).unsqueeze(0)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        raise NotImplementedError(
            f"{self.name} has no prior to sample from; use a generative model (vae, beta-vae, cvae)"
        )

    @torch.no_grad()
    def interpolate(
        self, x1: Tensor, x2: Tensor, steps: int = 10, y1: Tensor | None = None, y2: Tensor | None = None,
        mode: str = "linear",
    ) -> Tensor:
        """Decode ``steps`` evenly spaced points between the codes of x1 and x2 (endpoints included).

        ``x1`` and ``x2`` are single items or batches of equal size; the result is (steps, batch, *shape)
        for batches and (steps, *shape) for single items. ``mode`` is "linear" (a straight line) or "slerp"
        (the great-circle arc of ``slerp``).
        """
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"unknown interpolation mode {mode!r}; choose one of {', '.join(INTERPOLATION_MODES)}")
        single = x1.dim() == len(self.config.input_shape)
        if single:
            x1, x2 = x1.unsqueeze(0), x2.unsqueeze(0)
            y1 = None if y1 is None else y1.reshape(1)
            y2 = None if y2 is None else y2.reshape(1)
        z1, z2 = self.encode(x1, y1), self.encode(x2, y2)
        alphas = torch.linspace(0.0, 1.0, steps, device=z1.device).view(-1, 1, 1)
        if mode == "slerp":
            codes = slerp(z1.unsqueeze(0), z2.unsqueeze(0), alphas)  # (steps, batch, latent)
        else:
            codes = (1 - alphas) * z1.unsqueeze(0) + alphas * z2.unsqueeze(0)
        labels = None if y1 is None else y1.repeat(steps)
        frames = self.decode(codes.flatten(0, 1), labels).unflatten(0, (steps, x1.shape[0]))
        return frames[:, 0] if single else frames


INTERPOLATION_MODES = ("linear", "slerp")


def slerp(z1: Tensor, z2: Tensor, alphas: Tensor) -> Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for latent codes), broadcast over leading axes.

    Under a Gaussian prior most mass lies near a sphere, and the straight line between two codes passes
    through the improbable region near the origin; the arc keeps the norm of equal-norm endpoints. Where the
    codes are (nearly) parallel, opposite (the arc is undefined) or zero, this falls back to the line.
    """
    cosine = torch.nn.functional.cosine_similarity(z1, z2, dim=-1).clamp(-1.0, 1.0).unsqueeze(-1)
    angle = torch.arccos(cosine)
    sine = torch.sin(angle)
    nonzero = (z1.norm(dim=-1, keepdim=True) > 0) & (z2.norm(dim=-1, keepdim=True) > 0)
    # within 1.8 degrees of parallel the arc is the line to 1e-4; near opposite, dividing by sin(angle) is unstable
    usable = (cosine.abs() < 0.9995) & nonzero
    safe_sine = torch.where(usable, sine, torch.ones_like(sine))
    arc = (torch.sin((1 - alphas) * angle) * z1 + torch.sin(alphas * angle) * z2) / safe_sine
    return torch.where(usable, arc, (1 - alphas) * z1 + alphas * z2)
