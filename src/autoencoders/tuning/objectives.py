"""What ``tune`` optimizes: metrics of a trial's run on its validation split, one or several at once.

- ``val/NAME``: the last value Lightning logged for the validation split (``val/loss``, ``val/recon``, ``val/kl``,
  ``val/bits`` ...); ``loss`` is ``val/loss`` and ``rate`` is ``val/bits`` (a compressive AE's bits per item).
- any metric of ``evaluate`` (``nll``, ``mse``, ``psnr``, ``probe``, ``kmeans`` ...), computed on the validation split.
- ``auroc``: how well the reconstruction error ranks the validation split's anomalies (labels 1) above its normal
  items (labels 0).
- ``seconds``: the trial's training time.

The direction of each is the metric's own (``psnr`` up, ``nll`` down) unless given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from autoencoders.errors import InputError

ALIASES = {"loss": "val/loss", "rate": "val/bits"}
DIRECTIONS = ("minimize", "maximize")
# evaluate's metrics that need the model to have something, and what it is
NEEDS_LIKELIHOOD = {"nll", "neg_elbo", "kl"}
NEEDS_LABELS = {"probe", "kmeans", "classification_error", "cluster_error", "auroc"}


class ObjectiveError(InputError):
    """An objective that cannot be measured: an unknown metric, a direction that is neither, a model without it."""


@dataclass(frozen=True)
class Objective:
    name: str  # as the user wrote it
    source: str  # logged | evaluated | auroc | seconds
    key: str  # the metrics.csv column, or evaluate's metric name
    direction: str  # minimize | maximize

    @property
    def on_validation_curve(self) -> bool:
        """Logged every epoch, so a trial can be pruned on it."""
        return self.source == "logged"


def parse_objectives(metrics: str | list[str], directions: str | list[str] | None, model_cls) -> list[Objective]:
    """``"val/loss"``, ``"rate,psnr"`` or a list -> Objectives; ``directions`` (one per metric, or None) overrides
    each metric's own direction."""
    from autoencoders.catalog import metric_unit
    from autoencoders.metrics import METRICS

    names = _split(metrics)
    if not names:
        raise ObjectiveError("--metric names at least one metric (e.g. val/loss, nll, psnr, or rate,psnr)")
    if len(set(names)) != len(names):
        raise ObjectiveError(f"--metric names a metric twice: {','.join(names)}")
    wanted = _split(directions) if directions is not None else []
    if wanted and len(wanted) != len(names):
        raise ObjectiveError(f"--direction gives {len(wanted)} direction(s) for {len(names)} metric(s); give one per metric")
    bad = [direction for direction in wanted if direction not in DIRECTIONS]
    if bad:
        raise ObjectiveError(f"--direction takes minimize or maximize (one per metric); got {', '.join(bad)}")
    objectives = []
    for index, name in enumerate(names):
        key = ALIASES.get(name, name)
        if key.startswith("val/") and len(key) > 4:
            source, own = "logged", "minimize"
        elif key == "seconds":
            source, own = "seconds", "minimize"
        elif key == "auroc":
            source, own = "auroc", "maximize"
        elif key in METRICS:
            source, own = "evaluated", "maximize" if metric_unit(key)[1] == "↑" else "minimize"
        else:
            raise ObjectiveError(
                f"unknown metric {name!r}; tune val/loss (or any val/NAME the model logs), rate, seconds, auroc, "
                f"or an evaluate metric: {', '.join(METRICS)}"
            )
        if key in NEEDS_LIKELIHOOD and not model_cls.has_likelihood:
            raise ObjectiveError(f"metric {name} needs a likelihood, which {model_cls.name} does not have; try mse or val/loss")
        objectives.append(Objective(name, source, key, wanted[index] if wanted else own))
    return objectives


def _split(text: str | list[str] | None) -> list[str]:
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [str(part).strip() for part in parts if str(part).strip()]


def check_labels(objectives: list[Objective], dataset) -> None:
    """Metrics that read the validation split's labels need them (two values, 0 and 1, for auroc)."""
    needing = [objective.name for objective in objectives if objective.key in NEEDS_LABELS]
    labels = dataset.labels("val")
    if needing and labels is None:
        raise ObjectiveError(f"metric(s) {', '.join(needing)} need labels, and dataset {dataset.name!r} has none")
    if any(objective.key == "auroc" for objective in objectives) and set(labels.unique().tolist()) != {0, 1}:
        raise ObjectiveError(
            f"auroc needs validation labels 1 (anomaly) and 0 (normal item), both present; {dataset.name!r} has "
            f"{len(labels.unique())} label values"
        )


def measure(objectives: list[Objective], run: Path, training_seconds: float) -> list[float]:
    """Each objective's value for the trained run folder ``run``."""
    evaluated = [objective.key for objective in objectives if objective.source == "evaluated"]
    results: dict[str, float] = {}
    if evaluated:
        from autoencoders.metrics import evaluate

        results = evaluate(run, metrics=evaluated, split="val")
    values = []
    for objective in objectives:
        if objective.source == "logged":
            values.append(_last_logged(run, objective))
        elif objective.source == "seconds":
            values.append(float(training_seconds))
        elif objective.source == "auroc":
            values.append(reconstruction_auroc(run))
        else:
            values.append(float(results[objective.key]))
    return values


def _last_logged(run: Path, objective: Objective) -> float:
    import pandas as pd

    path = run / "metrics.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if objective.key not in table.columns:
        logged = sorted(column for column in table.columns if str(column).startswith("val/"))
        raise ObjectiveError(
            f"metric {objective.name}: the trial's run logged no {objective.key} "
            f"(it logs {', '.join(logged) or 'no validation metrics: the run ended before its first epoch'})"
        )
    values = table[objective.key].dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def reconstruction_auroc(run: Path) -> float:
    """ROC AUC of the per-item reconstruction error against the validation split's anomaly labels (1)."""
    import torch

    from autoencoders.io import load, load_run_data
    from autoencoders.uses.anomaly import auroc

    model = load(run).eval()
    dataset = load_run_data(run)
    items, labels = dataset.split("val"), dataset.labels("val")
    with torch.no_grad():
        errors = torch.cat([
            (model.reconstruct(batch) - batch).flatten(1).square().mean(1) for batch in items.split(1024)
        ])
    return auroc(errors.numpy(), (labels == 1).numpy())
