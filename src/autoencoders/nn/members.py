"""Several small MLPs side by side, run as one batched matrix product: the members of a bagged autoencoder.

Inputs and outputs are shaped (members, N, features); member m only ever sees its own slice, so the members
train as independent networks while costing one set of (batched) kernel calls per layer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MemberLinear(nn.Module):
    """``members`` independent ``nn.Linear(in_features, out_features)`` layers, with nn.Linear's initialization."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        bound = 1 / math.sqrt(in_features)  # nn.Linear's kaiming_uniform(a=√5) and bias bounds
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class MemberMLP(nn.Sequential):
    """Widths ``[in, *hidden, out]`` for every member, ReLU between layers, none after the last."""

    def __init__(self, members: int, widths: list[int]):
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            if index:
                layers.append(nn.ReLU())
            layers.append(MemberLinear(members, width_in, width_out))
        super().__init__(*layers)
