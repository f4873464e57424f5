"""The ACAI lines benchmark (Berthelot et al. 2018, section 3): how realistic and how smooth latent
interpolations are, on images where the true data manifold is known (one line per angle).

- Mean Distance: each decoded frame's cosine distance (raw pixels in [-1, 1]) to the nearest of 10,000
  reference lines at evenly spaced angles; averaged over all frames. Low means every frame is a line.
- Smoothness: per interpolation, the angles of the nearest reference lines, unwrapped; the largest step
  over the total change, minus 1/(steps − 1) (the value of a perfectly even sweep); an interpolation whose
  total change is below 1e-4 has no score and counts as 0 in the mean, which is undefined (NaN) when no
  interpolation moves, as in the paper's code: a model that decodes every mixture to one line is not smooth.
  Low means the angle moves evenly from one end to the other.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

REFERENCE_LINES = 10_000


def reference_lines(count: int = REFERENCE_LINES) -> tuple[Tensor, Tensor]:
    """(angles, images (count, 1024) in [-1, 1]) at evenly spaced angles in [0, 2π)."""
    from autoencoders.data.synthetic import render_lines

    angles = torch.arange(count, dtype=torch.float64) * (2 * math.pi / count)
    return angles, render_lines(angles.float()).flatten(1)


def nearest_lines(frames: Tensor, references: Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """For each frame (N, ...) in [-1, 1]: (cosine distance to the nearest reference, that reference's index)."""
    unit_references = torch.nn.functional.normalize(references.double(), dim=1)
    distances, indices = [], []
    for start in range(0, frames.shape[0], chunk):
        unit_frames = torch.nn.functional.normalize(frames[start : start + chunk].flatten(1).double(), dim=1)
        similarity, index = (unit_frames @ unit_references.T).max(dim=1)
        distances.append(1 - similarity)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def smoothness(angles: np.ndarray) -> np.ndarray:
    """Smoothness of each interpolation from its (interpolations, steps) angles in radians; NaN for one whose
    angle does not move."""
    angles = np.unwrap(np.atleast_2d(angles), axis=-1)
    largest_step = np.abs(np.diff(angles, axis=-1)).max(axis=-1)
    total_change = np.abs(angles[:, -1] - angles[:, 0])
    steps = angles.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = largest_step / total_change - 1 / (steps - 1)
    return np.where(total_change > 1e-4, score, np.nan)


def score_interpolations(frames: Tensor, references: tuple[Tensor, Tensor] | None = None) -> dict[str, float]:
    """Mean Distance and Smoothness of decoded interpolations ``frames`` (steps, pairs, 1, 32, 32) in [-1, 1]."""
    angles, images = references or reference_lines()
    steps, pairs = frames.shape[:2]
    distance, index = nearest_lines(frames.transpose(0, 1).reshape(steps * pairs, -1), images)
    scores = smoothness(angles[index].reshape(pairs, steps).numpy())
    moving = ~np.isnan(scores)
    mean_smoothness = scores[moving].sum() / len(scores) if moving.any() else math.nan
    return {"mean_distance": float(distance.mean()), "smoothness": float(mean_smoothness)}


@torch.no_grad()
def lines_benchmark(model, test_images: Tensor, pairs: int = 256, steps: int = 16) -> tuple[dict[str, float], Tensor]:
    """Interpolate test lines i and pairs + i in latent space; returns (scores, frames in [-1, 1]).

    Frames are (steps, pairs, 1, 32, 32), endpoints included, mapped from the model's value range to [-1, 1].
    """
    if tuple(model.config.input_shape) != (1, 32, 32):
        raise ValueError(f"the lines benchmark needs a model trained on `lines` (1x32x32 items); this one takes {tuple(model.config.input_shape)}")
    if test_images.shape[0] < 2 * pairs:
        raise ValueError(f"{pairs} pairs need {2 * pairs} test lines; the split has {test_images.shape[0]}")
    model = model.eval()
    device = next(model.parameters()).device
    first, second = test_images[:pairs].to(device), test_images[pairs : 2 * pairs].to(device)
    frames = model.interpolate(first, second, steps).cpu()
    low, high = model.config.value_range
    frames = (frames - low) / (high - low) * 2 - 1
    return score_interpolations(frames), frames


def lines_benchmark_run(run, pairs: int = 256, steps: int = 16) -> tuple[dict[str, float], Tensor]:
    """``lines_benchmark`` of a run folder's model on the first 2 x ``pairs`` test lines (the same for every seed);
    the scores, named ``lines_*``, join the run's metrics.json. Returns them and the frames."""
    from autoencoders.data import load_dataset
    from autoencoders.io import load
    from autoencoders.metrics import save_metrics

    scores, frames = lines_benchmark(load(run), load_dataset("lines", limit=2 * pairs).test, pairs, steps)
    results = {f"lines_{name}": value for name, value in scores.items()}
    save_metrics(run, {**results, "lines_pairs": pairs, "lines_steps": steps})
    return results, frames
