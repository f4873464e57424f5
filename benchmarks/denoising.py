"""Denoising MNIST and Fashion-MNIST: PSNR gain over the noisy input at Gaussian σ = 0.3 and 0.5.

For each dataset and σ, a denoising autoencoder (``dae``, Gaussian corruption at that σ, Bernoulli decoder,
batch 128, Adam 1e-3; the network is ``--arch``/``--hidden``/``--latent-dim``, by default the fully convolutional
``spatial`` one, 64-64 channels down to a 16 x 7 x 7 code map) trains for a fixed wall-clock budget on one CPU
thread (``--train-minutes``), then the test images (the first ``--test-items`` of the official test set) get additive
Gaussian noise of standard deviation σ (pixels in [0, 1], seeded, not clipped, as in the usual AWGN
benchmarks) and are denoised by:
- the DAE (``autoencoders.uses.denoise.denoise``),
- a median filter (scipy.ndimage; window 3 or 5, whichever scores better on 200 validation images),
- non-local means (scikit-image, fast mode, 5x5 patches, 13x13 search window, the true σ given; the filter
  strength h picked from 0.3σ..0.8σ on the same validation images), when scikit-image is installed.
PSNR (peak = 1) and SSIM are averaged over images; "noisy" is the noisy input clipped to [0, 1], the floor any
method must beat. A picture of the first test items (clean, noisy, median, NLM, DAE) is saved per setting.

    python benchmarks/denoising.py [--datasets mnist,fashion-mnist] [--sigmas 0.3,0.5] [--train-minutes 5]
                                   [--arch spatial --hidden 64,64 --latent-dim 784] [--test-items 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one CPU thread for scipy/scikit-image too
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, data_dir, write_result, write_table  # noqa: E402

RESULT_NAME = "denoising"
VALIDATION_ITEMS = 200
MEDIAN_WINDOWS = (3, 5)
NLM_STRENGTHS = (0.3, 0.45, 0.6, 0.8)  # h as a multiple of σ
EXAMPLES = 8


def median_filter(noisy, window: int):
    import numpy as np
    from scipy import ndimage

    return np.clip(ndimage.median_filter(noisy, size=(1, 1, window, window)), 0.0, 1.0)


def nl_means(noisy, sigma: float, strength: float):
    import numpy as np
    from skimage.restoration import denoise_nl_means

    return np.stack([
        np.clip(denoise_nl_means(image[0], h=strength * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True), 0.0, 1.0)[None]
        for image in noisy
    ])


def scores(clean, estimate) -> dict[str, float]:
    import torch

    from autoencoders.metrics.recon import psnr, ssim

    estimate = torch.as_tensor(estimate, dtype=torch.float32)
    return {"psnr": float(psnr(clean, estimate, (0.0, 1.0)).mean()), "ssim": float(ssim(clean, estimate, (0.0, 1.0)).mean())}


def best_setting(options, method, clean, noisy):
    """The option of ``method(noisy, option)`` with the highest validation PSNR."""
    measured = {option: scores(clean, method(noisy, option))["psnr"] for option in options}
    return max(measured, key=measured.get), measured


def run_one(dataset_name: str, sigma: float, network: dict, train_minutes: float, test_items: int, seed: int, has_nlm: bool) -> dict:
    import torch

    import autoencoders
    from autoencoders.data import load_dataset
    from autoencoders.io import load, read_config
    from autoencoders.plots import image_grid
    from autoencoders.uses.denoise import add_gaussian_noise, denoise

    out = ROOT / "runs" / f"denoising-{dataset_name}-sigma{sigma}-seed{seed}"
    seconds = int(train_minutes * 60)
    started = time.perf_counter()
    autoencoders.train(
        "dae", dataset_name, out, **network, batch_size=128, max_steps=10**7, lr=1e-3, seed=seed,
        data_dir=data_dir(), progress=False, overwrite=True,
        settings={
            "noise": "gaussian", "noise_level": sigma, "recon_loss": "bce",
            "training.max_time": f"00:00:{seconds // 60:02d}:{seconds % 60:02d}", "training.log_every": 500,
        },
    )
    model = load(out)
    training = read_config(out)["training"]
    dataset = load_dataset(dataset_name, data_dir=data_dir(), seed=seed)
    clean, val = dataset.test[:test_items], dataset.val[:VALIDATION_ITEMS]
    noisy = add_gaussian_noise(clean, sigma, (0.0, 1.0), seed=seed + 1)
    noisy_val = add_gaussian_noise(val, sigma, (0.0, 1.0), seed=seed + 2)

    results: dict = {"dataset": dataset_name, "sigma": sigma, "test_items": len(clean), "seed": seed, "network": network_text(network)}
    results["noisy"] = scores(clean, noisy.clamp(0, 1))
    timed = time.perf_counter()
    denoised = denoise(model, noisy)
    results["dae"] = {**scores(clean, denoised), "seconds": round(time.perf_counter() - timed, 1)}
    results["dae"].update(steps=training["steps_done"], train_seconds=training["seconds"], run_folder=str(out.relative_to(ROOT)))

    window, measured = best_setting(MEDIAN_WINDOWS, median_filter, val, noisy_val.numpy())
    timed = time.perf_counter()
    median = median_filter(noisy.numpy(), window)
    results["median"] = {**scores(clean, median), "window": window, "validation_psnr": measured,
                         "seconds": round(time.perf_counter() - timed, 1)}
    rows = [clean[:EXAMPLES], noisy[:EXAMPLES].clamp(0, 1), torch.as_tensor(median[:EXAMPLES])]
    if has_nlm:
        strength, measured = best_setting(NLM_STRENGTHS, lambda x, s: nl_means(x, sigma, s), val, noisy_val.numpy())
        timed = time.perf_counter()
        nlm = nl_means(noisy.numpy(), sigma, strength)
        results["nl_means"] = {**scores(clean, nlm), "h": round(strength * sigma, 3), "validation_psnr": measured,
                               "seconds": round(time.perf_counter() - timed, 1)}
        rows.append(torch.as_tensor(nlm[:EXAMPLES], dtype=torch.float32))
    rows.append(denoised[:EXAMPLES])
    names = ["clean", "noisy", "median", *(["NL-means"] if has_nlm else []), "DAE"]
    picture = RESULTS / f"denoising_{dataset_name}_sigma{sigma}.png"
    image_grid(torch.cat(rows), nrow=EXAMPLES, row_labels=names).save(picture)
    results["picture"] = str(picture.relative_to(ROOT))
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def network_text(network: dict) -> str:
    """How the table names a DAE network: "spatial 64-64, 784-number code"."""
    return f"{network['arch']} {'-'.join(map(str, network['hidden']))}, {network['latent_dim']}-number code"


def table(runs: list[dict], train_minutes: float) -> str:
    lines = [
        f"Test images with Gaussian noise σ (pixels in [0, 1], not clipped); PSNR in dB (peak 1) and SSIM, averaged "
        f"over the first N official test images; gain = PSNR − PSNR of the noisy input clipped to [0, 1]. DAE: the "
        f"network in its column (spatial: fully convolutional, the code a feature map, no fully connected layer), batch 128, "
        f"trained on that σ for {train_minutes:g} min of one CPU thread on a 2-core machine shared with other jobs. "
        "Median and NL-means settings picked on 200 validation images. Script: `benchmarks/denoising.py`.",
        "",
        "| dataset | σ | N | noisy PSNR | median | NL-means | DAE | DAE gain | DAE SSIM (noisy) | DAE network | DAE steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        nlm = run.get("nl_means")
        nlm_text = "n/a" if nlm is None else f"{nlm['psnr']:.2f} (+{nlm['psnr'] - run['noisy']['psnr']:.2f})"
        lines.append(
            f"| {run['dataset']} | {run['sigma']} | {run['test_items']} | {run['noisy']['psnr']:.2f} "
            f"| {run['median']['psnr']:.2f} (+{run['median']['psnr'] - run['noisy']['psnr']:.2f}) "
            f"| {nlm_text} "
            f"| {run['dae']['psnr']:.2f} | **+{run['dae']['psnr'] - run['noisy']['psnr']:.2f}** "
            f"| {run['dae']['ssim']:.3f} ({run['noisy']['ssim']:.3f}) | {run['network']} | {run['dae']['steps']} |"
        )
    lines.append("")
    for run in runs:
        classical = {name: run[key]["psnr"] for name, key in (("median", "median"), ("NL-means", "nl_means")) if key in run}
        best = max(classical, key=classical.get)
        difference = run["dae"]["psnr"] - classical[best]
        verdict = "beats" if difference > 0 else "is behind"
        lines.append(f"- {run['dataset']}, σ = {run['sigma']}: the DAE {verdict} the best classical filter ({best}) by "
                     f"{abs(difference):.2f} dB PSNR; SSIM {run['dae']['ssim']:.3f} vs {run[{'median': 'median', 'NL-means': 'nl_means'}[best]]['ssim']:.3f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--sigmas", default="0.3,0.5")
    parser.add_argument("--train-minutes", type=float, default=5.0, help="DAE training budget per (dataset, σ)")
    parser.add_argument("--arch", default="spatial", help="the DAE's network: spatial | conv | mlp")
    parser.add_argument("--hidden", default="64,64", help="its widths (mlp) or channels per stride-2 stage, comma-separated")
    parser.add_argument("--latent-dim", type=int, default=784, help="its code size (spatial: a multiple of the 7 x 7 map)")
    parser.add_argument("--test-items", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true", help="rewrite the RESULTS.md table from the results JSON")
    args = parser.parse_args()
    if args.table_only:
        stored = json.loads((RESULTS / f"{RESULT_NAME}.json").read_text())
        write_table("Denoising (MNIST, Fashion-MNIST)", table(stored["runs"], stored["budget"]["train_minutes_per_model"]))
        return

    import importlib.util

    import torch

    torch.set_num_threads(1)
    has_nlm = importlib.util.find_spec("skimage") is not None
    if not has_nlm:
        print("scikit-image is not installed (pip install 'autoencoders[denoise]'): NL-means is left out", flush=True)
    network = {"arch": args.arch, "hidden": tuple(int(width) for width in args.hidden.split(",")), "latent_dim": args.latent_dim}
    started = time.perf_counter()
    # a rerun of some settings replaces their rows and keeps the others (measured with the same script)
    previous = RESULTS / f"{RESULT_NAME}.json"
    runs = json.loads(previous.read_text())["runs"] if previous.exists() else []
    for dataset_name in args.datasets.split(","):
        for sigma in (float(value) for value in args.sigmas.split(",")):
            run = run_one(dataset_name, sigma, network, args.train_minutes, args.test_items, args.seed, has_nlm)
            runs = [old for old in runs if (old["dataset"], old["sigma"]) != (dataset_name, sigma)] + [run]
            runs.sort(key=lambda entry: (entry["dataset"] != "mnist", entry["dataset"], entry["sigma"]))
            print(f"{dataset_name} σ={sigma}: noisy {run['noisy']['psnr']:.2f} dB, median {run['median']['psnr']:.2f}, "
                  f"NL-means {run.get('nl_means', {}).get('psnr', float('nan')):.2f}, DAE {run['dae']['psnr']:.2f} "
                  f"({run['wall_seconds']:.0f} s)", flush=True)
            # written as the runs finish, so an interrupted benchmark keeps what it measured
            budget = {"train_minutes_per_model": args.train_minutes, "cpu_threads": 1,
                      "wall_seconds_of_this_invocation": round(time.perf_counter() - started, 1)}
            write_result(RESULT_NAME, {"runs": runs, "budget": budget})
            write_table("Denoising (MNIST, Fashion-MNIST)", table(runs, args.train_minutes))


if __name__ == "__main__":
    main()
