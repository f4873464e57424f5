"""Rate-distortion on MNIST and Fashion-MNIST: compressive autoencoders against WebP, JPEG and PNG (Pillow).

The first ``--items`` (1000) test images of each dataset are compressed by every codec; each point is the
mean size in bytes per image of whole files (headers included) and the mean PSNR and SSIM per image.
Ours is reported two ways: one image per file (the header and checksum, 13 bytes, 17 at a step other than 1, paid by
every image) and the whole set in one file (the header paid once). Pillow's codecs write one file per image.

Per dataset, one compressive-ae per ``--rate-weights`` value (the fully convolutional ``spatial`` arch,
channels ``--hidden``, 32-32 by default, code 8 x 7 x 7, MSE; it reaches a given PSNR in far fewer CPU steps than an MLP with a code
vector) trains for ``--train-minutes`` of wall-clock time on one thread, then is used at several quantization steps (step 1 is
what it was trained for; finer steps cost more bytes for less error). Runs are kept under ``--runs``
and reused when present (delete them to retrain). Results: results/rate_distortion.json, a section of
RESULTS.md, results/rate_distortion.png, and rate_distortion.json in each run folder (for its report).

    python benchmarks/rate_distortion.py --train-minutes 20
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch

from common import RESULTS, data_dir, write_result, write_table

DATASETS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
WEBP_QUALITIES = (0, 5, 10, 20, 30, 50, 70, 90)
JPEG_QUALITIES = (10, 30, 50, 75, 90)
DEFAULT_CHANNELS = (32, 32)


def quality(x: torch.Tensor, decoded: torch.Tensor) -> dict[str, float]:
    from autoencoders.metrics.recon import psnr, ssim

    return {"psnr": float(psnr(x, decoded, (0.0, 1.0)).mean()), "ssim": float(ssim(x, decoded, (0.0, 1.0)).mean())}


def point(x: torch.Tensor, decoded: torch.Tensor, total_bytes: float, setting: str) -> dict[str, float | str]:
    per_item = total_bytes / len(x)
    return {"setting": setting, "bytes_per_item": per_item, "bits_per_value": 8 * per_item / x[0].numel(), **quality(x, decoded)}


def pillow_curve(x: torch.Tensor, codec: str, qualities: tuple[int | None, ...]) -> list[dict]:
    from PIL import Image

    pixels = (x[:, 0] * 255).round().byte().numpy()
    points = []
    for setting in qualities:
        total, decoded = 0, []
        for image in pixels:
            buffer = io.BytesIO()
            options = {"optimize": True} if setting is None else {"quality": setting}
            Image.fromarray(image).save(buffer, format=codec, **options)
            total += buffer.tell()
            decoded.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L")))
        restored = torch.from_numpy(np.stack(decoded)).float().div(255).unsqueeze(1)
        if setting is None:  # lossless: a size, no quality to plot (PSNR is infinite)
            per_item = total / len(x)
            points.append({"setting": "lossless", "bytes_per_item": per_item, "bits_per_value": 8 * per_item / x[0].numel()})
        else:
            points.append(point(x, restored, total, f"quality {setting}"))
    return points


def train_run(folder: Path, dataset: str, rate_weight: float, args) -> dict:
    """Train (or reuse) a run; returns what its training cost: wall-clock seconds and steps done."""
    if not (folder / "model.safetensors").exists():
        _train(folder, dataset, rate_weight, args)
    config = json.loads((folder / "config.json").read_text())
    training = config.get("training", {})
    return {
        "rate_weight": rate_weight, "training_seconds": training.get("seconds"), "steps": training.get("steps_done"),
        "channels": config["model"]["config"]["hidden"], "lr_schedule": training.get("lr_schedule", "constant"),
    }


def _train(folder: Path, dataset: str, rate_weight: float, args) -> None:
    import autoencoders

    whole, rest = divmod(int(args.train_minutes * 60), 60)
    # cosine decay needs a known length: max_steps, with the time limit as a safety net
    length = {"max_steps": args.max_steps} if args.max_steps else {"epochs": 1000}
    autoencoders.train(
        "compressive-ae", dataset, folder, arch="spatial", hidden=args.hidden, latent_dim=8 * 7 * 7, batch_size=64,
        lr=2e-3, seed=args.seed, data_dir=data_dir(), progress=False, overwrite=True, **length,
        settings={"recon_loss": "mse", "rate_weight": rate_weight, "training.max_time": f"00:00:{whole:02d}:{rest:02d}",
                  "training.lr_schedule": args.lr_schedule, "training.val_batch_size": 2000, "training.log_every": 200},
    )


def run_name(dataset: str, rate_weight: float, args) -> str:
    """The run folder's name: the default network keeps its old name, others add what differs."""
    name = f"{dataset}-rate{rate_weight:g}"
    if tuple(args.hidden) != DEFAULT_CHANNELS:
        name += "-ch" + "-".join(map(str, args.hidden))
    if args.lr_schedule != "constant":
        name += f"-{args.lr_schedule}{args.max_steps or ''}"
    return name


def ours_curves(run: Path, x: torch.Tensor, steps: tuple[float, ...]) -> tuple[list[dict], list[dict]]:
    """(one image per file, the whole set in one file) points of a run at every step."""
    from autoencoders.uses.compress import Codec

    single, whole = [], []
    for step in steps:
        codec = Codec.from_run(run, step=step, data_dir=data_dir())
        data = codec.compress(x)
        decoded = codec.decompress(data)
        per_file = sum(len(codec.compress(x[index : index + 1])) for index in range(len(x)))
        single.append(point(x, decoded, per_file, f"step {step:g}"))
        whole.append(point(x, decoded, len(data), f"step {step:g}"))
    return single, whole


def webp_bytes_at(psnr: float, webp: list[dict]) -> float | None:
    """WebP's bytes per image at ``psnr``, log-linearly interpolated between its two nearest qualities."""
    ordered = sorted(webp, key=lambda p: p["psnr"])
    for low, high in zip(ordered, ordered[1:]):
        if low["psnr"] <= psnr <= high["psnr"]:
            share = (psnr - low["psnr"]) / (high["psnr"] - low["psnr"])
            return float(np.exp((1 - share) * np.log(low["bytes_per_item"]) + share * np.log(high["bytes_per_item"])))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--items", type=int, default=1000, help="first N test images")
    parser.add_argument("--rate-weights", default="0.002", help="one model per value (λ, distortion per bit)")
    parser.add_argument("--steps", default="0.5,0.7,1,1.4,2,2.8", help="quantization steps each model is used at")
    parser.add_argument("--train-minutes", type=float, default=20.0, help="wall-clock training budget per model")
    parser.add_argument("--hidden", type=lambda text: tuple(int(part) for part in text.split(",")), default=DEFAULT_CHANNELS,
                        help="channels of the two stride-2 stages, e.g. 64,64")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    parser.add_argument("--max-steps", type=int, default=None, help="steps per model (cosine decays over them); default: time only")
    parser.add_argument("--runs", type=Path, default=Path(__file__).parent / "runs" / "rate_distortion")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-results", action="store_true", help="only redraw the plot and table from results/rate_distortion.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from autoencoders.data import load_dataset
    from autoencoders.files import atomic_write_json

    if args.from_results:
        publish(json.loads((RESULTS / "rate_distortion.json").read_text()))
        return

    rate_weights = [float(value) for value in args.rate_weights.split(",")]
    steps = tuple(float(value) for value in args.steps.split(","))
    budget = (
        "1 CPU thread (2 shared cores); each model trained "
        + (f"{args.max_steps} steps (at most {args.train_minutes:g} min), " if args.max_steps else f"{args.train_minutes:g} min wall-clock, ")
        + f"{len(rate_weights)} model(s) per dataset"
    )
    for dataset in args.datasets.split(","):
        x = load_dataset(dataset, data_dir=data_dir()).test[: args.items]
        curves = {
            "WebP": pillow_curve(x, "WEBP", WEBP_QUALITIES),
            "JPEG": pillow_curve(x, "JPEG", JPEG_QUALITIES),
            "PNG (lossless)": pillow_curve(x, "PNG", (None,)),
        }
        runs = {}
        for rate_weight in rate_weights:
            folder = args.runs / run_name(dataset, rate_weight, args)
            training = train_run(folder, dataset, rate_weight, args)
            single, whole = ours_curves(folder, x, steps)
            curves[f"compressive-ae λ={rate_weight:g}, one image per file"] = single
            curves[f"compressive-ae λ={rate_weight:g}, {len(x)} images in one file"] = whole
            runs[str(folder.relative_to(Path(__file__).parent))] = training
            atomic_write_json(folder / "rate_distortion.json", {
                "dataset": DATASETS.get(dataset, dataset), "items": len(x), "budget": budget,
                "curves": {name: points for name, points in curves.items() if "λ" not in name or f"λ={rate_weight:g}" in name},
            })
            results = save_dataset(dataset, {"curves": curves, "runs": runs, "budget": budget}, args.items)  # after every model
    publish(results)


def save_dataset(dataset: str, entry: dict, items: int) -> dict:
    """The saved results with ``dataset``'s entry replaced, read afresh: the other datasets keep their results,
    even those another run of this script (one dataset each, side by side) wrote meanwhile."""
    saved = RESULTS / "rate_distortion.json"
    results = json.loads(saved.read_text()) if saved.exists() else {"datasets": {}}
    results = {key: value for key, value in results.items() if key != "machine"}
    results["items"] = items
    results["datasets"][dataset] = entry
    write_result("rate_distortion", results)
    return results


def publish(results: dict) -> None:
    """The plot (results/rate_distortion.png) and the RESULTS.md table."""
    from autoencoders.plots import rate_distortion_curves, save_picture

    panels = {DATASETS.get(name, name): entry["curves"] for name, entry in results["datasets"].items()}
    save_picture(rate_distortion_curves(panels), RESULTS / "rate_distortion.png")
    write_table("Appendix: Rate-distortion, every point (benchmarks/rate_distortion.py)", table(results))


def table(results: dict) -> str:
    lines = [
        f"`benchmarks/rate_distortion.py`: first {results['items']} test images of each dataset; mean bytes per image "
        "of whole files, mean PSNR/SSIM per image. Ours one image per file pays its header and checksum per image "
        "(13 bytes, 17 at a quantization step other than 1: format 2 of `autoencoders compress`); "
        "the whole set in one file pays it once. Plot: results/rate_distortion.png.",
        "",
        "Training (the machine was shared, so steps, not minutes, say how trained):",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        runs = "; ".join(
            f"{run}: channels {'-'.join(map(str, run_entry.get('channels', DEFAULT_CHANNELS)))}, "
            f"{run_entry.get('lr_schedule', 'constant')} learning rate, {run_entry['steps']} steps in {run_entry['training_seconds']:.0f} s"
            for run, run_entry in entry["runs"].items()
        )
        lines.append(f"- {DATASETS.get(dataset, dataset)}: {entry.get('budget', results.get('budget'))}. {runs}.")
    lines += [
        "",
        "| dataset | codec | setting | bytes/image | bits/pixel | PSNR dB | SSIM | WebP bytes at this PSNR | ours / WebP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, entry in results["datasets"].items():
        webp = entry["curves"]["WebP"]
        for codec, points in entry["curves"].items():
            for p in sorted(points, key=lambda p: p["bytes_per_item"]):
                reference = webp_bytes_at(p["psnr"], webp) if "compressive" in codec else None
                ratio = f"{p['bytes_per_item'] / reference:.0%}" if reference else ""
                quality_text = f"{p['psnr']:.2f} | {p['ssim']:.3f}" if "psnr" in p else "∞ | 1"
                lines.append(
                    f"| {DATASETS.get(dataset, dataset)} | {codec} | {p['setting']} | {p['bytes_per_item']:.1f} | "
                    f"{p['bits_per_value']:.3f} | {quality_text} | "
                    f"{'' if reference is None else f'{reference:.0f}'} | {ratio} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
