"""The ``autoencoders`` command line. Heavy imports (torch, Lightning) happen inside the commands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from autoencoders.settings import parse_value

# what a user can fix: one line, exit code 2 (InputError is a ValueError; the others name a path or a missing extra)
BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError, ImportError)
REPORT_URL = "the project's issue tracker"


class GuardedGroup(TyperGroup):
    """Every command runs inside the one error path: bad input ends in a one-line message and exit code 2, a
    failure of the library in one line that says to report it and exit code 1; ``--debug`` shows the traceback."""

    def invoke(self, context: typer.Context) -> Any:
        try:
            return super().invoke(context)
        except (typer.Exit, typer.Abort, typer.TyperException):  # the command line's own exits and usage errors
            raise
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]; a run continues with `autoencoders train ... --out DIR --resume`")
            raise typer.Exit(code=130) from None
        except Exception as error:  # noqa: BLE001 - the one place every command's errors end
            if (context.obj or {}).get("debug"):
                raise
            message = " ".join(str(error).split()) or type(error).__name__
            if isinstance(error, BAD_INPUT):
                _fail(message)
            console.print(
                f"[bold red]internal error:[/] {type(error).__name__}: {escape(message)}\n"
                f"This is a bug of autoencoders; rerun with --debug for the traceback and report it to {REPORT_URL}."
            )
            raise typer.Exit(code=1) from None


app = typer.Typer(
    cls=GuardedGroup,
    help="Train, evaluate and use autoencoders.\n\n"
    "Example: autoencoders train vae --data digits --epochs 20 --out runs/vae-digits && "
    "autoencoders report runs/vae-digits",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # error messages stay whole for grep and logs


@app.callback()
def options(
    context: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also AUTOENCODERS_DEBUG=1)."),
) -> None:
    """Options of every command."""
    import os

    context.obj = {"debug": debug or os.environ.get("AUTOENCODERS_DEBUG", "") not in ("", "0")}
    library = logging.getLogger("autoencoders")  # the library's notes (where data is read from, a resume's checkpoint)
    if not any(isinstance(handler, NoteHandler) for handler in library.handlers):
        library.addHandler(NoteHandler())
        library.setLevel(logging.INFO)


class NoteHandler(logging.Handler):
    def emit(self, record) -> None:
        console.print(f"[dim]note:[/] {escape(record.getMessage())}", highlight=False)


RunArg = typer.Argument(..., help="A run folder (written by `autoencoders train`) or a saved-model folder.")
DataDirOpt = typer.Option(None, "--data-dir", help="Folder holding dataset files (else $AUTOENCODERS_DATA, then the cache).")


@contextmanager
def _progress() -> Iterator[None]:
    """Bars for the library's long loops (``autoencoders.progress``) on stderr, only when it is a terminal: a
    pipe, a log file or a test gets none. One bar at a time, each removed when its loop ends."""
    from autoencoders.progress import reporting

    if not console.is_terminal:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bars:

        def report(items: Iterable, total: int, description: str) -> Iterator:
            task = bars.add_task(description, total=total)
            try:
                for item in items:
                    yield item
                    bars.advance(task)
            finally:
                bars.remove_task(task)

        with reporting(report):
            yield


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=2)


def _parse_set(items: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--set takes key=value (e.g. --set beta=4 or --set data.binarization=fixed); got {item!r}")
        settings[key.strip()] = parse_value(value)
    return settings


@app.command("models")
def models_command() -> None:
    """List the model families."""
    from autoencoders.catalog import GENERATIVE, MODEL_DESCRIPTIONS

    table = Table(title="models")
    table.add_column("name", style="bold")
    table.add_column("generates")
    table.add_column("description")
    for name, description in MODEL_DESCRIPTIONS.items():
        table.add_row(name, "yes" if name in GENERATIVE else "", description)
    Console().print(table)


@app.command("datasets")
def datasets_command(data_dir: Optional[Path] = DataDirOpt) -> None:
    """List the built-in and downloadable datasets, with whether their files are here."""
    from autoencoders.data.registry import DATASETS, dataset_status

    table = Table(title="datasets")
    for column in ("name", "status", "shape", "description"):
        table.add_column(column)
    colours = {"built-in": "green", "cached": "green", "missing": "yellow"}
    for name, spec in DATASETS.items():
        status = dataset_status(name, data_dir)
        table.add_row(name, f"[{colours.get(status, 'white')}]{status}[/]", spec.shape, spec.description)
    Console().print(table)
    console.print("Your own data: --data PATH to a folder of images, a .csv/.parquet table or a .npy array.")


# flags that name a model setting differently from its config field
SETTING_ALIASES = {"dropout": "latent_dropout"}


def _model_flags(arguments: list[str]) -> dict[str, Any]:
    """``--prior mog --components 10 --supervised`` -> {"prior": "mog", "components": 10, "supervised": True}.

    Any field of the model's config can be given as a flag (dashes for underscores); a flag with no value
    is True. The model rejects fields it does not have, naming the ones it has.
    """
    settings: dict[str, Any] = {}
    index = 0
    while index < len(arguments):
        token = arguments[index]
        if not token.startswith("--") or len(token) < 3:
            _fail(f"unexpected argument {token!r}; model settings are given as --name value (e.g. --prior mog)")
        name, sep, value = token[2:].partition("=")
        if not sep:
            has_value = index + 1 < len(arguments) and not arguments[index + 1].startswith("--")
            value = arguments[index + 1] if has_value else "true"
            index += has_value
        key = name.replace("-", "_")
        settings[SETTING_ALIASES.get(key, key)] = parse_value(value)
        index += 1
    return settings


class TrainCommand(TyperCommand):
    """`train MODEL --help` also lists MODEL's own settings, each a flag (`--beta 4`), from its config class."""

    def parse_args(self, context: typer.Context, args: list[str]) -> list[str]:
        context.meta["train_arguments"] = list(args)  # --help is answered before MODEL is parsed
        return super().parse_args(context, args)

    def format_help(self, context: typer.Context, formatter: Any) -> None:
        super().format_help(context, formatter)
        from autoencoders.catalog import MODEL_DESCRIPTIONS

        model = next((word for word in context.meta.get("train_arguments", []) if not word.startswith("-")), None)
        if model not in MODEL_DESCRIPTIONS:
            Console().print("Run `autoencoders train MODEL --help` to list a model family's own settings.")
            return
        from autoencoders.models import MODELS
        from autoencoders.models.base import describe_settings

        table = Table(title=f"{model} settings: --name value or --set name=value (dashes or underscores)")
        table.add_column("flag", no_wrap=True)
        for column in ("type", "default", "what it is"):
            table.add_column(column)
        for name, kind, default, comment in describe_settings(MODELS[model].config_class):
            shown = "from the data" if name in FILLED_FROM_DATA else repr(default)
            table.add_row(f"--{name.replace('_', '-')}", escape(kind), escape(shown), escape(comment))
        Console().print(table)


# model settings that training takes from the dataset (a flag still overrides recon_loss; these rarely need one)
FILLED_FROM_DATA = {"input_shape", "value_range", "num_classes", "dataset_size"}


@app.command(
    "train", cls=TrainCommand, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train_command(
    context: typer.Context,
    model: str = typer.Argument(..., help="Model family: see `autoencoders models`."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name (`autoencoders datasets`) or a path."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Network: mlp | conv | spatial | acai | rnn | crnn."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="Widths (mlp, rnn) or channels (conv, spatial), e.g. 512,256."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="Size of the code."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the training set (default 10)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many batches."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (Adam), default 1e-3."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for weights, batches and noise (default 0)."),
    data_dir: Optional[Path] = DataDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with any of these options; flags win."),
    set_: list[str] = typer.Option([], "--set", help="key=value: a model field (beta=4), data.* or training.* setting."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/MODEL-DATA)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --out (its files are removed first); without it a run folder is never overwritten."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N items of each split."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate on the test split at the end."),
) -> None:
    """Train a model and write a run folder (config.json, model.safetensors, metrics, checkpoints).

    Settings of the model family are flags too (`--prior mog`, `--supervised`, `--labels 100`,
    `--clusters 16`, `--dropout 0.5`), the same as `--set prior=mog`.

    Examples:

      autoencoders train vae --data digits --epochs 20

      autoencoders train beta-vae --data mnist --arch conv --latent-dim 10 --set beta=4 --set kl_schedule=linear --set kl_warmup_steps=5000

      autoencoders train dae --data fashion-mnist --set noise=masking --set noise_level=0.5 --out runs/dae

      autoencoders train aae --data mnist --prior mog --components 10 --latent-dim 2

      autoencoders train aae-semi --data mnist --labels 100 --seed 1

      autoencoders train acai --data lines --arch acai --latent-dim 64 --set scales=4 --max-steps 20000

      autoencoders train vae --data mnist-binary --arch conv --config vae.yaml --out runs/vae --resume
    """
    from autoencoders.settings import parse_ints
    from autoencoders.training.run import train

    settings = {**_model_flags(context.args), **_parse_set(set_)}
    run = train(
        model, data, out, config=config, arch=arch, hidden=parse_ints(hidden) if hidden is not None else None,
        latent_dim=latent_dim, batch_size=batch_size, epochs=epochs, max_steps=max_steps, lr=lr, seed=seed,
        data_dir=data_dir, limit=limit, settings=settings, progress=False if no_progress else None, resume=resume,
        overwrite=overwrite,
    )
    console.print(f"[bold green]trained[/] {model}: run folder [bold]{run}[/]")
    if evaluate:
        from autoencoders.metrics import evaluate as evaluate_run

        _print_metrics(f"test metrics of {run}", evaluate_run(run, data_dir=data_dir))
    print(run)


@app.command(
    "tune", cls=TrainCommand, context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def tune_command(
    context: typer.Context,
    model: str = typer.Argument(..., help="Model family: see `autoencoders models`."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name (`autoencoders datasets`) or a path."),
    trials: int = typer.Option(20, "--trials", help="Run until the study holds N finished (completed or pruned) trials."),
    timeout: Optional[str] = typer.Option(None, "--timeout", help="Start no trial after this long: 600, 10min, 1h."),
    space: Optional[Path] = typer.Option(None, "--space", help="YAML search space: name: {type: float|int|categorical, low, high, log, choices}."),
    metric: str = typer.Option("val/loss", "--metric", help="What to optimize: val/loss (any val/NAME), rate, seconds, auroc, or an evaluate metric (nll, mse, psnr, probe ...); several comma-separated give a Pareto front."),
    direction: Optional[str] = typer.Option(None, "--direction", help="minimize or maximize, one per metric (default: each metric's own)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="SQLAlchemy URL of the study (default: sqlite in --out); postgresql://... lets workers on several machines share it."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="The study's name in the storage (default MODEL-DATA)."),
    jobs: int = typer.Option(1, "--jobs", help="Worker processes on this machine."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder: trials/NNN/, best/, report.html (default tuning/MODEL-DATA)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Network: mlp | conv | spatial | acai | rnn | crnn."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="Widths (mlp, rnn) or channels (conv, spatial), e.g. 512,256."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="Size of the code (fixed: not tuned)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Fixed: not tuned."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the training set per trial (default 10)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop each trial after this many batches."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (fixed: not tuned)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of every trial's training and of the sampler (default 0)."),
    data_dir: Optional[Path] = DataDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML run file with settings every trial shares."),
    set_: list[str] = typer.Option([], "--set", help="key=value every trial shares: a model field, data.* or training.* setting."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N items of each split."),
) -> None:
    """Search a model's settings for the best validation metric, each trial a run folder; the best is DIR/best.

    The family's own settings are flags too (`--prior mog`), fixed for every trial, as in `train`; a fixed
    setting is not tuned. Running the same command again continues the study.

    Examples:

      autoencoders tune vae --data mnist-binary --arch conv --epochs 5 --trials 30 --metric nll --out tuning/vae

      autoencoders tune compressive-ae --data mnist --arch spatial --metric rate,psnr --timeout 1h --out tuning/cae

      autoencoders tune vae --data mnist --storage postgresql://me@db/tuning --study-name vae-mnist --out tuning/vae
    """
    from autoencoders.settings import parse_ints
    from autoencoders.tuning import tune

    result = tune(
        model, data, out, trials=trials, timeout=timeout, space=space, metric=metric, direction=direction,
        storage=storage, study_name=study_name, jobs=jobs, config=config,
        settings={**_model_flags(context.args), **_parse_set(set_)}, arch=arch,
        hidden=parse_ints(hidden) if hidden is not None else None, latent_dim=latent_dim, batch_size=batch_size,
        epochs=epochs, max_steps=max_steps, lr=lr, seed=seed, data_dir=data_dir, limit=limit,
    )
    table = Table(title=f"study {result.study_name}: {result.finished} finished ({result.pruned} pruned), {result.failed} failed, "
                  f"{result.trials_here} run now in {result.seconds:.0f} s", caption=result.storage)
    for column in ("trial", *result.metrics, "settings"):
        table.add_column(column)
    for trial in result.best:
        values = (f"{value:.4g}" for value in trial["values"])
        table.add_row(str(trial["number"]), *values, escape(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items())))
    Console().print(table)
    for note in result.notes:
        console.print(f"[dim]note:[/] {escape(note)}")
    console.print(f"report: {result.report}" + (f"; best run: [bold]{result.best_run}[/]" if result.best_run else ""))
    print(result.folder)


@app.command("evaluate")
def evaluate_command(
    run: Path = RunArg,
    data: Optional[str] = typer.Option(None, "--data", help="Evaluate on another dataset (default: the run's)."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated: mse,l1,bce,hamming,psnr,ssim,nll,neg_elbo,kl,probe,kmeans,classification_error,cluster_error,cluster_stability; generation: fid,kid,precision,recall (Inception), fid_domain,kid_domain,precision_domain,recall_domain,is (the dataset's classifier); disentanglement (sprites): mig,factor-score."),
    samples: int = typer.Option(1000, "--samples", "-k", min=1, help="Importance samples per item for nll."),
    split: str = typer.Option("test", "--split", help="train | val | test."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N items."),
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {metric: value} on stdout."),
    sampler: str = typer.Option("prior", "--sampler", help="Generation metrics: prior | gmm (a Gaussian mixture fitted on training codes; names get _gmm)."),
    generated: int = typer.Option(10000, "--generated", min=1, help="Generation metrics: N samples against the first N items of the split."),
    components: int = typer.Option(10, "--components", min=1, help="Gaussian components of the gmm sampler."),
    device: str = typer.Option("cpu", "--device", help="Where the model runs: cpu | cuda (a GPU; probe and k-means still fit on the CPU)."),
) -> None:
    """Evaluate a trained model; results are also saved to RUN/metrics.json.

    Examples:

      autoencoders evaluate runs/vae --metrics mse,psnr,ssim

      autoencoders evaluate runs/vae --metrics nll -k 1000 --json

      autoencoders evaluate runs/aae-semi --metrics classification_error,probe,kmeans

      autoencoders evaluate runs/clusters-seed1 --metrics cluster_stability --split val   # no labels: keep the most stable seed

      autoencoders evaluate runs/beta-tcvae-sprites --metrics mig,factor-score

      autoencoders evaluate runs/vae --metrics fid_domain,kid_domain,precision_domain,recall_domain,is

      autoencoders evaluate runs/ae --metrics fid,fid_domain --sampler gmm --generated 2000
    """
    import json

    from autoencoders.metrics import evaluate

    from autoencoders.uses.sampling import SAMPLERS

    if sampler not in SAMPLERS:
        _fail(f"--sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    with _progress():
        results = evaluate(run, metrics=names, data=data, split=split, samples=samples, data_dir=data_dir, limit=limit,
            sampler=sampler, generated=generated, components=components, device=device,
        )
    if as_json:
        print(json.dumps(results))
        return
    _print_metrics(f"{split} metrics of {run}", results)


def _print_metrics(title: str, results: dict[str, float]) -> None:
    from autoencoders.catalog import metric_unit

    table = Table(title=title, caption="↑ higher is better, ↓ lower is better")
    for column, justify in (("metric", "left"), ("value", "right"), ("unit", "left"), ("", "center")):
        table.add_column(column, justify=justify)
    for name, value in results.items():
        table.add_row(name, f"{value:.4f}", *metric_unit(name))
    Console().print(table)


@app.command("sample")
def sample_command(
    run: Path = RunArg,
    n: int = typer.Option(64, "-n", min=1, help="Number of samples."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="A .png (image grid, or line plots of series), a .txt (text models: each sample then a line of 8 dashes) or a .npy array "
        "(default samples.png, samples.txt for text models).",
    ),
    label: Optional[int] = typer.Option(None, "--label", help="Class to draw (conditional models)."),
    seed: int = typer.Option(0, "--seed"),
    sampler: str = typer.Option("prior", "--sampler", help="prior (the model's) | gmm (a Gaussian mixture fitted on training codes: any autoencoder)."),
    components: int = typer.Option(10, "--components", min=1, help="Gaussian components of the gmm sampler."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Draw new items from a generative model's prior, or from a Gaussian mixture fitted on any model's codes.

    Examples:

      autoencoders sample runs/cvae -n 64 --label 3 -o threes.png

      autoencoders sample runs/ae -n 64 --sampler gmm --components 10 -o ae-samples.png

      autoencoders sample runs/vrnn-text -n 5 -o text.txt
    """
    from autoencoders.io import load
    from autoencoders.uses.items import text_alphabet, write_items
    from autoencoders.uses.sampling import SAMPLERS, sample_run

    if sampler not in SAMPLERS:
        _fail(f"--sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    model = load(run)
    if not model.generative and sampler == "prior":
        from autoencoders.catalog import GENERATIVE

        _fail(f"{model.name!r} has no prior to sample from; use --sampler gmm, or train one of: {', '.join(sorted(GENERATIVE))}")
    samples = sample_run(run, n, sampler, label, components, seed, data_dir)
    alphabet = text_alphabet(run)
    output = output or Path("samples.txt" if alphabet else "samples.png")
    write_items(samples, output, model.config.value_range, alphabet=alphabet)
    console.print(f"wrote {n} samples to {output}")


@app.command("reconstruct")
def reconstruct_command(
    run: Path = RunArg,
    output: Path = typer.Option(Path("reconstructions.png"), "-o", "--output"),
    n: int = typer.Option(16, "-n", min=1, help="Number of test items."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Picture test items (top of each pair) above their reconstructions.

    Example: autoencoders reconstruct runs/vae -o recon.png
    """
    from autoencoders.io import load
    from autoencoders.plots import reconstruction_grid
    from autoencoders.uses.items import first_test_items

    model = load(run)
    x, y = first_test_items(run, n, data_dir)
    y = y if model.conditional else None
    reconstruction_grid(x, model.reconstruct(x, y), tuple(model.config.value_range)).save(output)
    console.print(f"wrote {output}")


@app.command("interpolate")
def interpolate_command(
    run: Path = RunArg,
    output: Path = typer.Option(Path("interpolation.png"), "-o", "--output", help="A .png strip or a .npy array (pairs, steps, ...)."),
    pairs: int = typer.Option(4, "--pairs", min=1, help="Rows: pairs of test items (without --from/--to)."),
    steps: int = typer.Option(10, "--steps", min=2, help="Frames per row, endpoints included."),
    start: Optional[str] = typer.Option(None, "--from", help="Start items: test-set indices or image files (3 or a.png or 3,a.png)."),
    end: Optional[str] = typer.Option(None, "--to", help="End items, as many as --from: one row per pair."),
    mode: str = typer.Option("linear", "--mode", help="linear (a straight line) or slerp (a great-circle arc)."),
    label: Optional[int] = typer.Option(None, "--label", help="Class for conditional models when items are files."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Decode lines (or arcs, --mode slerp) in latent space between pairs of items, one row per pair.

    Without --from/--to the pairs are test items i and PAIRS + i.

    Examples:

      autoencoders interpolate runs/vae --pairs 6 --steps 12 -o interp.png

      autoencoders interpolate runs/vae --from 3 --to 17 --mode slerp -o three-to-seventeen.png

      autoencoders interpolate runs/vae --from a.png,b.png --to c.png,7 -o rows.png
    """
    from autoencoders.io import load
    from autoencoders.uses.items import interpolate_run, write_interpolations

    frames = interpolate_run(run, pairs, steps, start, end, mode, label, data_dir)
    write_interpolations(frames, output, load(run).config.value_range)
    console.print(f"wrote {output}")


@app.command("encode")
def encode_command(
    run: Path = RunArg,
    data: Optional[str] = typer.Option(None, "--data", help="Dataset name or path (default: the run's)."),
    output: Path = typer.Option(Path("codes.npy"), "-o", "--output", help="codes.npy or codes.parquet"),
    split: str = typer.Option("test", "--split"),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Encode a dataset split to latent codes (posterior means for VAEs, integer codebook indices for vqvae).

    Example: autoencoders encode runs/vae --data mnist -o codes.parquet
    """
    from autoencoders.uses.codes import encode_to_file

    count, size = encode_to_file(run, output, data, split, data_dir)
    console.print(f"wrote {count} codes of size {size} to {output}")


@app.command("decode")
def decode_command(
    run: Path = RunArg,
    codes: Path = typer.Argument(..., help="A .npy array (N, code size) or a .parquet file from `encode` (vqvae: the integer code grid)."),
    output: Path = typer.Option(Path("decoded.png"), "-o", "--output", help="A .png grid or a .npy array."),
    label: Optional[int] = typer.Option(None, "--label", help="Class for conditional models."),
) -> None:
    """Decode latent codes to items.

    Example: autoencoders decode runs/vae codes.npy -o decoded.png
    """
    from autoencoders.io import load
    from autoencoders.uses.codes import decode_codes
    from autoencoders.uses.items import text_alphabet, write_items

    items = decode_codes(run, codes, label)
    write_items(items, output, load(run).config.value_range, alphabet=text_alphabet(run))
    console.print(f"wrote {len(items)} decoded items to {output}")


def _label_list(text: str | None, count: int) -> list[int]:
    """"0-9", "1,3,5" or None (all ``count`` classes) -> class indices, checked."""
    if text is None:
        return list(range(count))
    labels: list[int] = []
    try:
        for part in text.replace(" ", "").split(","):
            first, dash, last = part.partition("-")
            labels += list(range(int(first), int(last) + 1)) if dash else [int(first)]
    except ValueError:
        _fail(f"--labels takes classes like 0-9 or 1,3,5; got {text!r}")
    wrong = [label for label in labels if not 0 <= label < count]
    if wrong or not labels:
        _fail(f"--labels must name classes in 0..{count - 1}; got {text!r}")
    return labels


@app.command("style-transfer")
def style_transfer_command(
    run: Path = RunArg,
    source: str = typer.Option(..., "--source", help="Test-set indices (3 or 0,5,9) or image files (a.png,b.png)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Classes to render: 0-9 or 1,3,5 (default all)."),
    output: Path = typer.Option(Path("style-transfer.png"), "-o", "--output", help="A .png grid or a .npy array."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Render each source's style as every label (a supervised AAE): one row per source, the source first.

    Example: autoencoders style-transfer runs/aae-sup --source 0,1,2 --labels 0-9 -o styles.png
    """
    from autoencoders.io import load
    from autoencoders.uses.items import write_items
    from autoencoders.uses.style import style_transfer_run

    config = load(run).config
    classes = _label_list(labels, config.num_classes)
    grid = style_transfer_run(run, source, classes, data_dir)
    write_items(grid, output, config.value_range, nrow=len(classes) + 1)
    console.print(f"wrote {len(grid) // (len(classes) + 1)} source(s) x {len(classes)} labels to {output}")


@app.command("augment")
def augment_command(
    run: Path = RunArg,
    n: int = typer.Option(..., "-n", min=1, help="Number of synthetic items, balanced over the classes."),
    output: Path = typer.Option(..., "-o", "--output", help="A folder (PNG files in one folder per class) or a .npz (x, y)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Classes to generate: 0-9 or 1,3,5 (default all)."),
    sampler: str = typer.Option("prior", "--sampler", help="prior | gmm (a Gaussian mixture fitted on training codes)."),
    components: int = typer.Option(10, "--components", min=1, help="Gaussian components of the gmm sampler."),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Write labelled synthetic items from a model that generates a chosen class (cvae, aae --supervised, aae-semi).

    The folder form reads back as a labelled dataset: `autoencoders train ... --data DIR`.

    Examples:

      autoencoders augment runs/cvae -n 1000 -o synthetic/

      autoencoders augment runs/aae-sup -n 500 --labels 3,8 -o threes-eights.npz
    """
    from autoencoders.io import load
    from autoencoders.uses.augment import augment_run
    from autoencoders.uses.sampling import SAMPLERS

    if sampler not in SAMPLERS:
        _fail(f"--sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    model = load(run)
    classes = None if labels is None or not model.sample_classes else _label_list(labels, model.sample_classes)
    path = augment_run(run, n, output, classes, sampler, components, seed, data_dir)
    console.print(f"wrote {n} labelled samples to {path}")
    print(path)


@app.command("compress")
def compress_command(
    run: Path = RunArg,
    inputs: list[Path] = typer.Argument(..., help="Image files, folders of images (sorted by path) or .npy arrays (N, *item_shape)."),
    output: Path = typer.Option(..., "-o", "--output", help="The compressed file to write."),
    step: Optional[float] = typer.Option(
        None, "--step", help="Quantization step of the codes (default: 1 for compressive-ae; else 1/16 of their spread). "
        "Smaller keeps more detail and costs more bytes.",
    ),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Compress items into one file: quantized codes, entropy-coded under tables fitted on the run's training data.

    Images keep their file names (decompressing into a folder writes the same names; they cost their length in
    bytes); images of another size than the model's are refused. Inputs larger than memory are read, encoded and
    written chunk by chunk (64 MiB of items at a time), and so is their file decompressed.

    Example: autoencoders compress runs/cae-mnist digits/ -o digits.aec
    """
    from autoencoders.uses.compress import compress_files

    with _progress():
        count, size = compress_files(run, inputs, output, step=step, data_dir=data_dir)
    console.print(f"wrote {count} items in {size} bytes ({size / count:.1f} bytes per item) to {output}")


@app.command("decompress")
def decompress_command(
    run: Path = RunArg,
    file: Path = typer.Argument(..., help="A file written by `autoencoders compress` with this run."),
    output: Path = typer.Option(..., "-o", "--output", help="A .npy array, a .png (one item) or a folder of PNGs (named as the compressed images were)."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Decode a compressed file with the run that wrote it (another model is refused).

    Example: autoencoders decompress runs/cae-mnist digits.aec -o decoded/
    """
    from autoencoders.uses.compress import decompress_file

    with _progress():
        written = decompress_file(run, file, output, data_dir=data_dir)
    console.print(f"wrote {len(written)} file(s) to {output}")


@app.command("denoise")
def denoise_command(
    run: Path = RunArg,
    input_path: Path = typer.Argument(..., metavar="INPUT", help="An image file, a folder of images, or a .npy array (N, ...)."),
    output: Path = typer.Option(..., "-o", "--output", help="A folder (one PNG per input), an image file, or a .npy array."),
) -> None:
    """Remove noise with a denoising model (dae): images keep their names, arrays their layout and dtype.

    Images must have the model's size (they are not resampled).

    Examples:

      autoencoders denoise runs/dae noisy/ -o clean/

      autoencoders denoise runs/dae scan.png -o scan-clean.png

      autoencoders denoise runs/dae noisy.npy -o clean.npy
    """
    from autoencoders.uses.denoise import denoise_path

    with _progress():
        written = denoise_path(run, input_path, output)
    console.print(f"denoised into {output}" + (f" ({len(written)} files)" if len(written) > 1 else ""))


@app.command("detect")
def detect_command(
    run: Path = typer.Argument(
        ..., metavar="RUN_OR_DETECTOR",
        help="A run folder (a detector is fitted on its training data), or a folder written by AnomalyDetector.save_pretrained (it scores as saved).",
    ),
    data: Path = typer.Option(..., "--data", help="Items to score: a .csv/.parquet table, a folder of images, or a .npy array."),
    output: Path = typer.Option(Path("scores.csv"), "-o", "--output", help="CSV or Parquet: id, anomaly_score, outlier (1/0); tables add top_feature_1..3 and top_share_1..3."),
    score: Optional[str] = typer.Option(None, "--score", help="With a run: recon (default), elbo (VAE family), latent, rapp (hidden-layer differences, RaPP), rotation (self-supervised quarter-turn prediction, square images), or a sum such as latent+rotation."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag items whose anomaly score exceeds this."),
    contamination: Optional[float] = typer.Option(
        None, "--contamination",
        help="Share of outliers expected among the items the detector is fitted on (a run's reference items, default 0.01; a saved detector's own by default): the threshold flags that share of them.",
    ),
    top: Optional[float] = typer.Option(None, "--top", help="Instead, flag this share of the scored items (0.05: the top 5%)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Table column holding row ids (default: the run's, else the row number)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="With a run: normal items to fit the detector on (default: the run's training data)."),
    reference_items: int = typer.Option(10000, "--reference-items", min=1, help="At most this many reference items."),
    neighbors: Optional[int] = typer.Option(None, "--neighbors", min=1, help="latent score: mean distance to this many nearest reference codes (default 5)."),
    latent_distance: Optional[str] = typer.Option(
        None, "--latent-distance",
        help="latent score: knn (default), whitened (kNN after whitening the codes), cosine, mahalanobis, or a sum such as knn+whitened+cosine.",
    ),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, help="elbo score: >1 gives the importance-sampled bound."),
    pool: Optional[int] = typer.Option(None, "--pool", min=1, help="recon score on images: average-pool the error over pool x pool patches."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Score every row or image for how anomalous it is, and flag the outliers.

    Higher anomaly scores are more unusual. With a run folder, a detector is fitted on the run's training data
    (or --reference) and the run's report then shows the scores, the worst items and, for tables, the columns
    the flagged rows owe their error to (kept in RUN/anomaly/, summary.json holding the threshold). With a
    folder written by AnomalyDetector.save_pretrained, the detector scores as saved: its score, its scaling and
    its threshold (unless --threshold or --contamination); the summary is written beside the scores
    (scores.csv -> scores.summary.json). The threshold and how it was set are printed.

    Examples:

      autoencoders detect runs/ae --data new_rows.csv -o scores.csv --contamination 0.01

      autoencoders detect my-detector --data new_rows.csv -o scores.csv

      autoencoders detect runs/vae --data photos/ -o scores.csv --score elbo --threshold 120

      autoencoders detect runs/ae --data images/ -o scores.csv --score latent --latent-distance knn+whitened+cosine
    """
    if output.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"-o must be a .csv or .parquet file; got {output}")
    from autoencoders.uses.detect import detect

    with _progress():
        frame = detect(run, data, score=score, threshold=threshold, contamination=contamination, top=top,
            id_column=id_column, reference=reference, reference_items=reference_items, data_dir=data_dir, output=output,
            neighbors=neighbors, latent_distance=latent_distance, samples=samples, pool=pool,
        )
    summary = frame.attrs["summary"]
    console.print(f"threshold {summary['threshold']:.6g} ({summary['threshold_from']})", markup=False, highlight=False)
    console.print(f"scored {summary['items']} items, {summary['outliers']} flagged as outliers; wrote {output} "
                  f"(summary: {summary['summary_file']})", markup=False, highlight=False)


@app.command("export")
def export_command(
    run: Path = RunArg,
    format: str = typer.Option(..., "--format", help="onnx (dynamic batch; needs onnx and onnxruntime: the export extra) | torchscript."),
    output: Path = typer.Option(..., "-o", "--output", help="The file to write (.onnx, .pt)."),
    part: str = typer.Option("reconstruct", "--part", help="encoder | decoder | reconstruct | score (per-item reconstruction error, as detect's recon)."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Export a model's deterministic path, checked first: the exported program runs on a batch of the run's test
    items (random items for a saved model without data) and the file is written only if its outputs match
    PyTorch's within 1e-4.

    Conditional models (cvae, aae --supervised) take the labels as a second input. Sampling does not export.

    Examples:

      autoencoders export runs/ae --format onnx -o ae-score.onnx --part score

      autoencoders export runs/vae --format torchscript -o vae-encoder.pt --part encoder
    """
    from autoencoders.uses.export import export_model

    result = export_model(run, output, format=format, part=part, data_dir=data_dir)
    console.print(
        f"checked on {result.items} {result.checked_on}: max difference from PyTorch {result.max_difference:.3g}; "
        f"wrote the {result.part} ({', '.join(result.inputs)} -> {', '.join(result.outputs)}, {result.size} bytes) to {output}",
        markup=False, highlight=False,
    )
    print(output)


@app.command("serve")
def serve_command(
    runs: list[Path] = typer.Argument(..., help="Run folders, saved models and saved detectors; each is served under its folder's name."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="The port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes, each loading every model."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Items per batch: concurrent requests to a model are run together."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", min=0, help="Under load, how long a batch waits for more requests."),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", help="Larger request bodies are refused (413)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads per worker (default: one per core); 1 often answers small requests sooner on a busy machine."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Serve trained models over HTTP (FastAPI + uvicorn: the serve extra); the API is described at /docs.

    Endpoints: GET /health, GET /v1/models, POST /v1/models/NAME/encode|decode|reconstruct|sample|score|compress|decompress.

    Example: autoencoders serve runs/ae my-detector --port 8000, then
    curl -s localhost:8000/v1/models/ae/score -H 'content-type: image/png' --data-binary @digit.png
    """
    from autoencoders.uses.serve import ServeConfig, serve

    config = ServeConfig(host=host, port=port, workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
                         max_body_mb=max_body_mb, threads=threads, data_dir=str(data_dir) if data_dir else None)

    def loaded(served) -> None:
        for entry in served:
            console.print(f"serving {entry.name} ({entry.model.name}): {', '.join(entry.capabilities)}", markup=False, highlight=False)
        console.print(f"API at http://{host}:{port}/docs", markup=False, highlight=False)

    serve(runs, config, on_loaded=loaded)


benchmark_app = typer.Typer(help="Benchmarks of a trained model.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command("lines")
def benchmark_lines_command(
    run: Path = RunArg,
    pairs: int = typer.Option(256, "--pairs", min=1, help="Interpolations: test lines i and PAIRS + i."),
    steps: int = typer.Option(16, "--steps", min=2, help="Frames per interpolation, endpoints included."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also picture the first 8 interpolations (.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """The ACAI lines benchmark: Mean Distance and Smoothness of latent interpolations (lower is better).

    The model must be trained on `lines`. Results are also saved to RUN/metrics.json.

    Example: autoencoders benchmark lines runs/acai-lines --json
    """
    import json

    from autoencoders.metrics.lines import lines_benchmark_run

    results, frames = lines_benchmark_run(run, pairs, steps)
    if output is not None:
        from autoencoders.plots import interpolation_strip

        interpolation_strip(frames[:, :8].transpose(0, 1), (-1.0, 1.0)).save(output)
    if as_json:
        print(json.dumps(results))
        return
    _print_metrics(f"lines benchmark of {run} ({pairs} interpolations, {steps} steps)", results)


@app.command("report")
def report_command(
    run: Path = RunArg,
    projection: str = typer.Option("pca", "--projection", help="Latent picture: pca | tsne | umap."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Write RUN/report.html: loss curves, reconstructions, samples, interpolations, latent space.

    Example: autoencoders report runs/vae --projection tsne
    """
    from autoencoders.report import write_report

    with _progress():
        path = write_report(run, data_dir=data_dir, projection=projection)
    console.print(f"wrote [bold]{path}[/]")
    print(path)


def main() -> None:
    # --debug is an option of the whole program; take it wherever it stands on the line
    if "--debug" in sys.argv[1:]:
        sys.argv = [sys.argv[0], "--debug", *[argument for argument in sys.argv[1:] if argument != "--debug"]]
    app()


if __name__ == "__main__":
    main()
