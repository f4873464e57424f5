"""Style transfer with a supervised AAE (Makhzani et al. 2016, section 4): the code of an item holds its style, the
label its class, so decoding one item's code with every label draws that item's style in every class."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from autoencoders.errors import InputError


def style_transfer_run(run: str | Path, source: str, classes: list[int], data_dir=None) -> Tensor:
    """A grid (sources x (1 + classes), *item): each row one source item (test-set indices or image files, as
    ``uses.items.chosen_items`` reads them) followed by its style rendered as each of ``classes``."""
    from autoencoders.io import load
    from autoencoders.uses.items import chosen_items

    model = load(run)
    if not model.transfers_style:
        raise InputError(f"style transfer needs a supervised AAE (autoencoders train aae --supervised); {run} is a {model.name}")
    x, _ = chosen_items(run, model, source, "--source", data_dir=data_dir, with_labels=False)
    frames = model.style_transfer(x, torch.tensor(classes))  # (sources, labels, *shape)
    return torch.cat([x.unsqueeze(1), frames], dim=1).flatten(0, 1)
