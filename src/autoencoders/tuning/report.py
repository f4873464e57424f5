"""``DIR/report.html`` of a study: one self-contained page, pictures inline as PNG, like a run's report.

Sections: the study (counts, best trial or Pareto front), the optimization history, the parameter importances
(Optuna's fANOVA, from two completed trials on), the parallel coordinates of the trials' parameters coloured by
the first objective, the Pareto front for two or more objectives, and the table of every trial.
"""

from __future__ import annotations

import base64
import html
import math
import warnings
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from autoencoders.files import atomic_write_bytes
from autoencoders.plots import figure_to_png_bytes
from autoencoders.report import Section, _page, _table
from autoencoders.tuning.best import best_trials
from autoencoders.tuning.objectives import Objective
from autoencoders.tuning.trial import format_value

REPORT_FILE = "report.html"


def write_study_report(folder: Path, study, objectives: list[Objective]) -> Path:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    sections = [_summary_section(study, trials, objectives)]
    if complete:
        sections.append(_figure_section("history", "Optimization history", _history(complete, objectives)))
        importances = _importances(study, objectives)
        if importances:
            sections.append(_figure_section("importance", "Parameter importances", _importance_figure(importances, objectives[0])))
        if complete[0].params:
            sections.append(_figure_section("parallel", "Parallel coordinates", _parallel(complete, objectives[0])))
        if len(objectives) >= 2:
            front = {trial.number for trial in best_trials(study)}
            sections.append(_figure_section("pareto", "Pareto front", _pareto(complete, front, objectives)))
    sections.append(Section("trials", "Trials", _trials_table(trials, objectives)))
    page = _page(f"Study {study.study_name}", sections)
    path = folder / REPORT_FILE
    atomic_write_bytes(path, page.encode())
    return path


def _summary_section(study, trials, objectives: list[Objective]) -> Section:
    states = [trial.state.name.lower() for trial in trials]
    rows = [
        ("model", str(study.user_attrs.get("model", "?"))), ("data", str(study.user_attrs.get("data", "?"))),
        ("objectives", ", ".join(f"{o.direction} {o.name}" for o in objectives)),
        ("trials", ", ".join(f"{states.count(state)} {state}" for state in ("complete", "pruned", "fail", "running") if state in states) or "none"),
    ]
    for trial in best_trials(study):
        values = ", ".join(f"{o.name} {format_value(v)}" for o, v in zip(objectives, trial.values))
        params = ", ".join(f"{name}={format_value(value)}" for name, value in trial.params.items())
        rows.append((f"best: trial {trial.number}" if len(objectives) == 1 else f"Pareto: trial {trial.number}", f"{values} [{params}]"))
    return Section("study", "Study", _table(rows))


def _figure_section(anchor: str, title: str, figure: Figure) -> Section:
    png = figure_to_png_bytes(figure)
    source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return Section(anchor, title, f'<figure><img src="{source}" alt="{html.escape(title)}"></figure>')


def _history(complete, objectives: list[Objective]) -> Figure:
    figure = Figure(figsize=(4.2 * len(objectives), 3.2), layout="constrained")
    for index, objective in enumerate(objectives):
        axes = figure.add_subplot(1, len(objectives), index + 1)
        numbers = [trial.number for trial in complete]
        values = np.array([trial.values[index] for trial in complete])
        axes.scatter(numbers, values, s=18, label="trial")
        best = np.minimum.accumulate(values) if objective.direction == "minimize" else np.maximum.accumulate(values)
        axes.step(numbers, best, where="post", color="tab:red", label="best so far")
        axes.set_xlabel("trial (completed ones)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(objective.name)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure


def _importances(study, objectives: list[Objective]) -> dict[str, float]:
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study, target=(lambda trial: trial.values[0]) if len(objectives) > 1 else None)
    except (ValueError, RuntimeError, ZeroDivisionError):  # too few or too alike trials to tell
        return {}


def _importance_figure(importances: dict[str, float], objective: Objective) -> Figure:
    figure = Figure(figsize=(5.5, 0.45 * len(importances) + 1.2), layout="constrained")
    axes = figure.add_subplot()
    names = list(importances)[::-1]
    axes.barh(names, [importances[name] for name in names], color="tab:blue")
    axes.set_xlabel(f"importance for {objective.name} (fANOVA)")
    return figure


def _parallel(complete, objective: Objective) -> Figure:
    """One line per completed trial across its parameters, each axis scaled to [0, 1] (log where the range spans
    decades; categories evenly spaced), coloured by the first objective."""
    names = sorted({name for trial in complete for name in trial.params})
    columns = [_scaled([trial.params.get(name) for trial in complete]) for name in names]
    values = np.array([trial.values[0] for trial in complete])
    figure = Figure(figsize=(max(5.0, 1.4 * len(names) + 2), 3.6), layout="constrained")
    axes = figure.add_subplot()
    span = np.ptp(values) or 1.0
    cmap = colormaps["viridis" if objective.direction == "minimize" else "viridis_r"]  # the best trials darkest
    for row, value in enumerate(values):
        axes.plot(range(len(names)), [column[0][row] for column in columns], color=cmap((value - values.min()) / span), alpha=0.8)
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks([])
    for position, (_, labels) in enumerate(columns):
        axes.axvline(position, color="#888", linewidth=0.8)
        axes.text(position, -0.06, labels[0], ha="center", va="top", fontsize=7)
        axes.text(position, 1.04, labels[1], ha="center", va="bottom", fontsize=7)
    axes.set_ylim(-0.15, 1.15)
    axes.set_title(f"colour: {objective.name}, darker is better", fontsize=9)
    return figure


def _scaled(column: list) -> tuple[list[float], tuple[str, str]]:
    """Values of one parameter in [0, 1] and the labels of the axis's ends."""
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in column)
    if not numeric:
        categories = sorted({str(value) for value in column})
        position = {category: index / max(1, len(categories) - 1) for index, category in enumerate(categories)}
        return [position[str(value)] for value in column], (categories[0], categories[-1])
    array = np.array(column, dtype=float)
    low, high = array.min(), array.max()
    logarithmic = low > 0 and high / low > 20
    scaled = np.log(array) if logarithmic else array
    span = (scaled.max() - scaled.min()) or 1.0
    return list((scaled - scaled.min()) / span), (format_value(float(low)), format_value(float(high)))


def _pareto(complete, front: set[int], objectives: list[Objective]) -> Figure:
    figure = Figure(figsize=(4.8, 3.8), layout="constrained")
    axes = figure.add_subplot()
    points = np.array([trial.values[:2] for trial in complete])
    on_front = np.array([trial.number in front for trial in complete])
    axes.scatter(points[~on_front, 0], points[~on_front, 1], s=18, color="#9aa4b2", label="trial")
    order = np.argsort(points[on_front, 0])
    axes.plot(points[on_front, 0][order], points[on_front, 1][order], "o-", color="tab:red", label="Pareto front")
    axes.set_xlabel(f"{objectives[0].name} ({objectives[0].direction})")
    axes.set_ylabel(f"{objectives[1].name} ({objectives[1].direction})")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _trials_table(trials, objectives: list[Objective]) -> str:
    names = sorted({name for trial in trials for name in trial.params})
    header = ["trial", "state", *(o.name for o in objectives), *names, "seconds", "run"]
    rows = []
    for trial in trials:
        values = trial.values or [math.nan] * len(objectives)
        state = trial.state.name.lower()
        if state == "pruned" and "pruned_at_epoch" in trial.user_attrs:
            state += f" (epoch {trial.user_attrs['pruned_at_epoch']})"
        seconds = trial.user_attrs.get("seconds")
        cells = [str(trial.number), state, *(format_value(v) if math.isfinite(v) else "" for v in values),
                 *(format_value(trial.params[name]) if name in trial.params else "" for name in names),
                 format_value(float(seconds)) if isinstance(seconds, (int, float)) else "", str(trial.user_attrs.get("run", ""))]
        rows.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
