"""`autoencoders tune` against the library's default settings, with the same training budget on each side.

1. Binarized MNIST, conv VAE (the library's conv encoder/decoder, Bernoulli decoder, dynamic binarization), one CPU
   thread, ``--budget-minutes`` (30) of wall-clock time per side, the two sides at once (a process each, so that both
   meet the same load from the rest of the machine):
   - default: ``train("vae", "mnist-binary", arch="conv")`` with every other setting the library's default (lr 1e-3,
     batch 64, latent 16, channels 32-64), for the whole budget;
   - tuned: a study of ``--study-share`` (a third) of the budget (trials of ``--trial-seconds`` each, TPE, pruned from
     their validation curve; space: lr, its schedule (constant, or cosine to zero over the run), batch size, latent size,
     conv channels), then the best trial's settings trained
     for what is left of the budget (the study's wall time is counted, set-up and pruned trials included).
   Both are scored by test NLL (``evaluate``, K importance samples, the first ``--eval-items`` test images).
2. Compressive AE on MNIST, ``--metric rate,psnr``: a study of ``--rd-minutes`` (22) on ``--rd-jobs`` (2) workers of
   one thread, trials of ``--rd-trial-seconds`` (300): the hand-picked models' budget (2 x 22 min). Each Pareto-front
   model is compressed like benchmarks/rate_distortion.py's hand-picked ones (the first 1000 test images in one file)
   at the same quantization steps, and its points compared with theirs (from results/rate_distortion.json).

Per-trial overhead: the seconds a trial spends beyond its training, up to the end of ``train`` (set-up, data, the
run folder's files, Optuna's bookkeeping before the trial), as each trial records it.

    nice -n 10 python benchmarks/tune.py [--budget-minutes 30] [--skip-rd | --skip-nll]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RESULTS_MD, ROOT, data_dir, write_result, write_table  # noqa: E402

NAME = "tune"
HEADLINE_CLAIM = "Tuning (`autoencoders tune`): conv VAE test NLL, binarized MNIST, same budget"
RD_CLAIM = "Tuning: compressive AE Pareto front (rate, PSNR) against rate_distortion.py's hand-picked models"
NLL_SPACE = """\
lr: {type: float, low: 3.0e-4, high: 5.0e-3, log: true}
batch_size: {type: categorical, choices: [32, 64, 128, 256]}
latent_dim: {type: int, low: 8, high: 64, log: true}
hidden: {type: categorical, choices: [[32, 64], [16, 32], [32, 32]]}
lr_schedule: {type: categorical, choices: [constant, cosine]}
kl_schedule: null
kl_warmup_steps: null
"""
NLL_COMMON = {"arch": "conv", "epochs": 10_000}
NLL_QUIET = {"training.log_every": 200, "training.val_batch_size": 2000}
RD_SPACE = """\
rate_weight: {type: float, low: 2.0e-4, high: 2.0e-2, log: true}
lr: {type: float, low: 5.0e-4, high: 5.0e-3, log: true}
latent_dim: null
batch_size: null
"""


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def duration(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def trial_stats(folder: Path, study_name: str) -> dict:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{folder / 'study.db'}")
    overheads = [t.user_attrs["overhead_seconds"] for t in study.trials if "overhead_seconds" in t.user_attrs]
    # the whole trial as Optuna timed it (sampling, training, measuring the objectives, storage writes) less training
    beyond = [(t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["training_seconds"]
              for t in study.trials if t.datetime_complete and "training_seconds" in t.user_attrs]
    states = [t.state.name.lower() for t in study.trials]
    return {
        "trials": len(states), "complete": states.count("complete"), "pruned": states.count("pruned"), "failed": states.count("fail"),
        "overhead_seconds_mean": round(statistics.mean(overheads), 3) if overheads else None,
        "overhead_seconds_median": round(statistics.median(overheads), 3) if overheads else None,
        "overhead_seconds_max": round(max(overheads), 3) if overheads else None,
        "overhead_seconds_after_first": round(statistics.mean(overheads[1:]), 3) if len(overheads) > 1 else None,
        "trial_wall_beyond_training_mean": round(statistics.mean(beyond), 3) if beyond else None,
        "trial_wall_beyond_training_max": round(max(beyond), 3) if beyond else None,
        "trial_wall_beyond_training_max_after_first": round(max(beyond[1:]), 3) if len(beyond) > 1 else None,
    }


def nll_default(args, runs: Path) -> dict:
    """The library's default settings, trained for the whole budget."""
    import autoencoders

    budget = args.budget_minutes * 60
    started = time.time()
    run = autoencoders.train("vae", "mnist-binary", runs / "default", **NLL_COMMON, data_dir=data_dir(), progress=False,
                             overwrite=True, settings={**NLL_QUIET, "training.max_time": duration(budget)})
    return {"wall_seconds": round(time.time() - started, 1), **scored(args, run)}


def nll_tuned(args, runs: Path) -> dict:
    """A study on ``study_share`` of the budget, then the best trial's settings trained for what is left of it."""
    import autoencoders

    budget = args.budget_minutes * 60
    space = runs / "nll_space.yaml"
    space.write_text(NLL_SPACE)
    shutil.rmtree(runs / "study", ignore_errors=True)
    started = time.time()
    study = autoencoders.tune(
        "vae", "mnist-binary", runs / "study", trials=10_000, timeout=duration(budget * args.study_share), space=space,
        settings={**NLL_QUIET, "training.max_time": duration(args.trial_seconds)}, **NLL_COMMON, data_dir=data_dir(),
    )
    study_wall = time.time() - started
    best = study.best[0]["params"]
    settings = {**NLL_QUIET, "training.max_time": duration(budget - study_wall), "latent_dim": best["latent_dim"], "hidden": best["hidden"]}
    settings |= {f"training.{name}": best[name] for name in ("lr", "batch_size", "lr_schedule")}
    started = time.time()
    run = autoencoders.train("vae", "mnist-binary", runs / "tuned", **NLL_COMMON, data_dir=data_dir(), progress=False,
                             overwrite=True, settings=settings)
    final_wall = time.time() - started
    return {"study_wall_seconds": round(study_wall, 1), "final_training_wall_seconds": round(final_wall, 1),
            "wall_seconds": round(study_wall + final_wall, 1), "study": trial_stats(runs / "study", study.study_name),
            "best_trial": study.best[0], **scored(args, run)}


def scored(args, run) -> dict:
    import autoencoders

    started = time.time()
    metrics = autoencoders.evaluate(run, metrics=["nll"], samples=args.samples, limit=args.eval_items, data_dir=data_dir())
    config = json.loads((Path(run) / "config.json").read_text())
    return {
        "test_nll": metrics["nll"], "eval_seconds": round(time.time() - started, 1),
        "training_seconds": config["training"]["seconds"], "steps": config["training"]["steps_done"],
        "settings": {key: config["training"][key] for key in ("lr", "batch_size", "lr_schedule")}
        | {key: config["model"]["config"][key] for key in ("latent_dim", "hidden")},
    }


def one_thread(side, args, runs: Path) -> dict:
    import torch

    from autoencoders.tuning.study import end_with_parent

    end_with_parent()  # a killed benchmark leaves no side training on
    torch.set_num_threads(1)
    return side(args, runs)


def nll_part(args, runs: Path) -> dict:
    """Both sides at once, each a process on one thread, so that both meet the same load from the rest of the machine."""
    load_before = load_average()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        default = pool.submit(one_thread, nll_default, args, runs)
        tuned = pool.submit(one_thread, nll_tuned, args, runs)
        results = {"default": default.result(), "tuned": tuned.result()}
    return {"budget_seconds": args.budget_minutes * 60, "trial_seconds": args.trial_seconds, "study_share": args.study_share,
            "eval_items": args.eval_items, "samples": args.samples, "load_average": [load_before, load_average()], **results}


def rd_part(args, runs: Path) -> dict:
    import autoencoders
    from autoencoders.data import load_dataset
    from rate_distortion import ours_curves

    hand = json.loads((RESULTS / "rate_distortion.json").read_text())["datasets"]["mnist"]
    picked = []
    for name, points in hand["curves"].items():
        if name.startswith("compressive-ae") and name.endswith("in one file"):
            picked += [{"model": name.removesuffix(", 1000 images in one file"), **point} for point in points]
    steps = tuple(sorted({float(point["setting"].removeprefix("step ")) for point in picked}))
    space = runs / "rd_space.yaml"
    space.write_text(RD_SPACE)
    shutil.rmtree(runs / "rd-study", ignore_errors=True)
    started, load_before = time.time(), load_average()
    study = autoencoders.tune(
        "compressive-ae", "mnist", runs / "rd-study", trials=10_000, timeout=duration(args.rd_minutes * 60), space=space,
        metric="rate,psnr", jobs=args.rd_jobs, arch="spatial", hidden=(32, 32), latent_dim=8 * 7 * 7, epochs=10_000,
        data_dir=data_dir(), settings={"recon_loss": "mse", "training.max_time": duration(args.rd_trial_seconds),
                                       "training.log_every": 200, "training.val_batch_size": 2000},
    )
    wall = time.time() - started
    x = load_dataset("mnist", data_dir=data_dir()).test[:1000]
    front = []  # every front model at every step the hand-picked models were used at, as they were
    for trial in study.best:
        _, whole = ours_curves(runs / "rd-study" / trial["run"], x, steps)
        front += [{"trial": trial["number"], "rate_weight": trial["params"]["rate_weight"], "lr": trial["params"]["lr"],
                   "steps_done": trial_steps(runs / "rd-study" / trial["run"]), **point} for point in whole]
    for point in picked:
        point["dominated_by"] = [f"trial {f['trial']} {f['setting']}" for f in front
                                 if f["bytes_per_item"] <= point["bytes_per_item"] and f["psnr"] >= point["psnr"]]
    return {
        "minutes": args.rd_minutes, "jobs": args.rd_jobs, "trial_seconds": args.rd_trial_seconds, "wall_seconds": round(wall, 1),
        "study": trial_stats(runs / "rd-study", study.study_name), "front_models": len(study.best), "front": front,
        "hand_picked": picked, "hand_picked_training": hand["runs"], "load_average": [load_before, load_average()],
    }


def trial_steps(run: Path) -> int:
    return json.loads((run / "config.json").read_text())["training"]["steps_done"]


def table(result: dict) -> str:
    nll = result["nll"]
    default, tuned = nll["default"], nll["tuned"]
    study = tuned["study"]
    lines = [
        f"Budget: {nll['budget_seconds'] / 60:.0f} minutes of wall-clock training on 1 CPU thread per side, the two sides at once, "
        f"one process each, on the 2-core machine (shared with other jobs: load average {nll['load_average'][0]} before, "
        f"{nll['load_average'][1]} after). The tuned side's "
        f"budget pays for its study ({tuned['study_wall_seconds']:.0f} s: {study['trials']} trials of ≤ {nll['trial_seconds']} s, "
        f"{study['pruned']} pruned, {study['failed']} failed) and for training the best settings in what was left "
        f"({tuned['final_training_wall_seconds']:.0f} s). Test NLL: K = {nll['samples']} importance samples, first {nll['eval_items']} test images.",
        "",
        "| side | lr | schedule | batch | latent | channels | steps | training s | test NLL (nats) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, side in (("default settings", default), ("tuned", tuned)):
        s = side["settings"]
        lines.append(f"| {name} | {s['lr']:.3g} | {s['lr_schedule']} | {s['batch_size']} | {s['latent_dim']} | {'-'.join(map(str, s['hidden'])) or 'default'} "
                     f"| {side['steps']} | {side['training_seconds']:.0f} | **{side['test_nll']:.2f}** |")
    lines += ["", f"Per-trial overhead beyond training (set-up, data, run folder, bookkeeping): mean {study['overhead_seconds_mean']} s, "
              f"median {study['overhead_seconds_median']} s, max {study['overhead_seconds_max']} s (the first trial pays the imports); "
              f"after the first: mean {study['overhead_seconds_after_first']} s. The whole trial as Optuna times it (sampling, "
              f"training, measuring val/loss, storage writes) beyond its training: mean {study['trial_wall_beyond_training_mean']} s, "
              f"max {study['trial_wall_beyond_training_max']} s (the first trial, which pays first-use imports; after it, max "
              f"{study['trial_wall_beyond_training_max_after_first']} s). Target: ≤ 1 s."]
    rd = result.get("rd")
    if rd:
        dominated = [p for p in rd["hand_picked"] if p["dominated_by"]]
        cpu_minutes = rd["minutes"] * rd["jobs"]
        lines += [
            "", f"Rate–distortion study (compressive AE, `--metric rate,psnr`, spatial 32-32, code 8×7×7): {rd['minutes']:.0f} minutes "
            f"on {rd['jobs']} worker(s) of one thread ({cpu_minutes:.0f} CPU-minutes; {rd['wall_seconds']:.0f} s wall), "
            f"{rd['study']['trials']} trials of ≤ {rd['trial_seconds']} s, {rd['study']['pruned']} pruned (no pruning with two "
            f"objectives), {rd['study']['failed']} failed; load average {rd['load_average'][0]} / {rd['load_average'][1]}. "
            f"The {rd['front_models']} Pareto-front models, each compressed at the hand-picked models' steps "
            "(1000 test images in one file), against rate_distortion.py's hand-picked models (2 models, 22 min each: "
            "44 CPU-minutes) at their steps; the front's points that no other front point dominates:", "",
            "| Pareto trial | λ | lr | training steps | step | bytes/image | PSNR dB |", "|---|---|---|---|---|---|---|",
        ]
        undominated = [f for f in rd["front"] if not any(g is not f and g["bytes_per_item"] <= f["bytes_per_item"] and g["psnr"] >= f["psnr"]
                                                          and (g["bytes_per_item"], g["psnr"]) != (f["bytes_per_item"], f["psnr"]) for g in rd["front"])]
        lines += [f"| {f['trial']} | {f['rate_weight']:.3g} | {f['lr']:.3g} | {f['steps_done']} | {f['setting']} "
                  f"| {f['bytes_per_item']:.1f} | {f['psnr']:.2f} |" for f in sorted(undominated, key=lambda f: f["bytes_per_item"])]
        lines += ["", f"Hand-picked points dominated (fewer or equal bytes and higher or equal PSNR) by a front point: "
                  f"{len(dominated)} of {len(rd['hand_picked'])}" + (": " + "; ".join(f"{p['model']} {p['setting']} ({p['bytes_per_item']:.1f} "
                  f"bytes, {p['psnr']:.2f} dB) by {', '.join(p['dominated_by'][:2])}" for p in dominated) + "." if dominated else ".")]
    return "\n".join(lines)


def update_headline(result: dict) -> None:
    rows = {HEADLINE_CLAIM: nll_row(result["nll"])}
    if result.get("rd"):
        rows[RD_CLAIM] = rd_row(result["rd"])
    lines = RESULTS_MD.read_text().split("\n")
    for claim, row in rows.items():
        found = [index for index, line in enumerate(lines) if line.startswith(f"| {claim} |")]
        if found:
            lines[found[0]] = row
            continue
        start = next(index for index, line in enumerate(lines) if line.startswith("**Headline"))  # after its last row
        last = next(index for index in range(start + 2, len(lines)) if lines[index].startswith("|") and not lines[index + 1].startswith("|"))
        lines.insert(last + 1, row)
    RESULTS_MD.write_text("\n".join(lines))


def rd_row(rd: dict) -> str:
    dominated = sum(1 for point in rd["hand_picked"] if point["dominated_by"])
    cpu_minutes = rd["minutes"] * rd["jobs"]
    return (f"| {RD_CLAIM} | {rd['front_models']} front models; dominate {dominated} of {len(rd['hand_picked'])} "
            f"hand-picked points | 2 hand-picked models (λ 0.002, 0.0005) at 6 quantization steps | "
            + ("yes (≥ 2)" if dominated >= 2 else f"**no: {dominated} vs ≥ 2**")
            + f" | [tune.py](#tuning-benchmarkstunepy) | study: {cpu_minutes:.0f} CPU-minutes ({rd['jobs']} worker(s) of one thread, "
            f"{rd['study']['trials']} trials of ≤ {rd['trial_seconds']} s); hand-picked: 2 × 22 CPU-minutes |")


def nll_row(nll: dict) -> str:
    default, tuned = nll["default"]["test_nll"], nll["tuned"]["test_nll"]
    study = nll["tuned"]["study"]
    row = (f"| {HEADLINE_CLAIM} | tuned **{tuned:.2f}** nats ({study['trials']} trials, {study['pruned']} pruned) | "
           f"default settings, whole budget: {default:.2f} | " + ("yes (tuned lower)" if tuned < default else f"**no: {tuned:.2f} vs {default:.2f}**")
           + " | [tune.py](#tuning-benchmarkstunepy) | "
           + f"1 CPU thread, {nll['budget_seconds'] / 60:.0f} min per side (study + final training vs one training); "
           + f"NLL K={nll['samples']}, first {nll['eval_items']} test images |")
    return row


def save(result: dict) -> dict:
    """The saved results with this run's parts put in: a part skipped here (or measured meanwhile by another run of
    this script, e.g. --skip-nll beside --skip-rd) keeps what was saved."""
    path = RESULTS / f"{NAME}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    merged = {key: saved[key] for key in ("nll", "rd") if key in saved} | result
    write_result(NAME, merged)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--study-share", type=float, default=1 / 3, help="share of the tuned side's budget spent on the study")
    parser.add_argument("--trial-seconds", type=int, default=30)
    parser.add_argument("--eval-items", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--rd-minutes", type=float, default=22.0, help="the rate-distortion study's wall-clock minutes")
    parser.add_argument("--rd-jobs", type=int, default=2, help="its workers, one thread each (22 min x 2: the hand-picked models' budget)")
    parser.add_argument("--rd-trial-seconds", type=int, default=300)
    parser.add_argument("--skip-nll", action="store_true", help="keep the last NLL measurement; run the rate-distortion study only")
    parser.add_argument("--skip-rd", action="store_true")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "tune")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    args.runs.mkdir(parents=True, exist_ok=True)
    measured = {}
    if not args.skip_nll:
        measured["nll"] = nll_part(args, args.runs)
        save(measured)
    if not args.skip_rd:
        measured["rd"] = rd_part(args, args.runs)
    result = save(measured)
    write_table("Tuning (benchmarks/tune.py)", table(result))
    update_headline(result)
    print(table(result))


if __name__ == "__main__":
    main()
