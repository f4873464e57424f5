"""Recurrent encoders and decoders for sequences: ``rnn`` for (length, channels) series, ``crnn`` for
sequences of images (length, C, H, W).

``rnn`` (Srivastava et al. 2015's sequence autoencoder): stacked GRU or LSTM layers read the series; the
last layer's final state becomes the features. The decoder maps the features to every layer's initial state,
unrolls for the sequence length with the features as each step's input (so the code reaches every step, not
only the first), and a linear layer gives each step's output.

``crnn``: the same with a convolutional network per frame (``nn.conv``) in front of the recurrence, and the
mirror convolutional decoder after it. Its ``hidden`` is the conv channels followed by the recurrent width.
"""

from __future__ import annotations

from torch import Tensor, nn

from autoencoders.nn.conv import ConvDecoder, ConvEncoder

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"unknown recurrent cell {cell!r}; choose one of {', '.join(CELLS)} (--set cell=gru)")
    return cell


class _Stack(nn.Module):
    """Recurrent layers of possibly different widths, one after another (``nn.GRU`` needs equal widths)."""

    def __init__(self, input_size: int, widths: tuple[int, ...], cell: str):
        super().__init__()
        self.cell = check_cell(cell)
        sizes = (input_size, *widths)
        self.layers = nn.ModuleList(CELLS[cell](size_in, size_out, batch_first=True) for size_in, size_out in zip(sizes, sizes[1:]))
        self.widths = tuple(widths)

    def forward(self, x: Tensor, initial: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(outputs of the last layer (B, T, width), final state of the last layer (B, width))."""
        for index, layer in enumerate(self.layers):
            state = None
            if initial is not None:
                hidden = initial[index].unsqueeze(0).contiguous()
                state = (hidden, initial[len(self.layers) + index].unsqueeze(0).contiguous()) if self.cell == "lstm" else hidden
            x, final = layer(x, state)
        last = final[0] if self.cell == "lstm" else final
        return x, last[0]

    @property
    def state_sizes(self) -> list[int]:
        """Numbers the initial states take: every layer's hidden state, and its cell state for an LSTM."""
        return list(self.widths) * (2 if self.cell == "lstm" else 1)


def _check_sequence(input_shape: tuple[int, ...], arch: str) -> None:
    if len(input_shape) != 2:
        raise ValueError(
            f"the {arch} arch needs sequences of shape (length, channels); got items of shape {tuple(input_shape)}. "
            "Sequences of images (length, C, H, W) take --arch crnn; images take mlp or conv"
        )


def _check_frames(input_shape: tuple[int, ...], arch: str) -> None:
    if len(input_shape) != 4:
        raise ValueError(
            f"the {arch} arch needs sequences of images of shape (length, C, H, W); got items of shape "
            f"{tuple(input_shape)}. Series (length, channels) take --arch rnn"
        )


def _split_crnn_hidden(hidden: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    if len(hidden) < 2:
        raise ValueError(
            f"the crnn arch's --hidden is the conv channels then the recurrent width (e.g. 32,64,128); got {hidden}"
        )
    return tuple(hidden[:-1]), hidden[-1]


class RecurrentEncoder(nn.Module):
    """(B, T, C) -> (B, out_features) from the final state of the last recurrent layer."""

    def __init__(self, input_shape: tuple[int, ...], hidden: tuple[int, ...], out_features: int, cell: str = "gru"):
        super().__init__()
        _check_sequence(input_shape, "rnn")
        self.recurrent = _Stack(input_shape[1], hidden, cell)
        self.head = nn.Linear(hidden[-1], out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.recurrent(x)[1])


class _UnrolledDecoder(nn.Module):
    """Features -> every layer's initial state; unrolled ``length`` steps with the features as input."""

    def __init__(self, in_features: int, widths: tuple[int, ...], length: int, cell: str):
        super().__init__()
        self.length = length
        self.recurrent = _Stack(in_features, widths, cell)
        self.initial = nn.Linear(in_features, sum(self.recurrent.state_sizes))

    def forward(self, z: Tensor) -> Tensor:
        """(B, in_features) -> the last layer's outputs (B, length, width)."""
        states = list(self.initial(z).tanh().split(self.recurrent.state_sizes, dim=1))
        inputs = z.unsqueeze(1).expand(-1, self.length, -1)
        return self.recurrent(inputs, states)[0]


class RecurrentDecoder(nn.Module):
    """(B, in_features) -> (B, T, C)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], output_shape: tuple[int, ...], cell: str = "gru"):
        super().__init__()
        _check_sequence(output_shape, "rnn")
        length, channels = output_shape
        widths = tuple(reversed(hidden))
        self.unrolled = _UnrolledDecoder(in_features, widths, length, cell)
        self.output = nn.Linear(widths[-1], channels)

    def forward(self, z: Tensor) -> Tensor:
        return self.output(self.unrolled(z))


class ConvRecurrentEncoder(nn.Module):
    """(B, T, C, H, W) -> (B, out_features): a conv network per frame, a recurrent layer across frames."""

    def __init__(self, input_shape: tuple[int, ...], hidden: tuple[int, ...], out_features: int, cell: str = "gru"):
        super().__init__()
        _check_frames(input_shape, "crnn")
        channels, width = _split_crnn_hidden(hidden)
        self.frames = ConvEncoder(tuple(input_shape[1:]), channels, width)
        self.recurrent = _Stack(width, (width,), cell)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        features = self.frames(x.flatten(0, 1)).relu().reshape(x.shape[0], x.shape[1], -1)  # (B, T, width)
        return self.head(self.recurrent(features)[1])


class ConvRecurrentDecoder(nn.Module):
    """(B, in_features) -> (B, T, C, H, W): the recurrence unrolled over frames, each decoded by a conv decoder."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], output_shape: tuple[int, ...], cell: str = "gru"):
        super().__init__()
        _check_frames(output_shape, "crnn")
        channels, width = _split_crnn_hidden(hidden)
        self.unrolled = _UnrolledDecoder(in_features, (width,), output_shape[0], cell)
        self.frames = ConvDecoder(width, channels, tuple(output_shape[1:]))

    def forward(self, z: Tensor) -> Tensor:
        steps = self.unrolled(z)  # (B, T, width)
        return self.frames(steps.flatten(0, 1)).unflatten(0, steps.shape[:2])
