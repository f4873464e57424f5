"""Training through Lightning: run folders, exact resume, seeds, NaN guard, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import autoencoders
from autoencoders.io import load
from autoencoders.training.module import NonFiniteLossError


def weights(run) -> dict[str, torch.Tensor]:
    return load(run).state_dict()


def test_run_folder_holds_everything(tmp_path):
    run = autoencoders.train(
        "vae", "digits", tmp_path / "run", latent_dim=4, hidden=(32,), max_steps=30, progress=False,
        settings={"training.log_every": 10},
    )
    for name in ("config.json", "model.safetensors", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "vae" and config["model"]["config"]["latent_dim"] == 4
    assert config["data"]["name"] == "digits" and config["training"]["steps_done"] == 30
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val/loss" in header
    model = autoencoders.load(run)
    assert model.config.input_shape == (1, 8, 8)


def test_a_number_given_as_text_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="training setting lr takes a number"):
        autoencoders.train("ae", "digits", tmp_path / "run", lr="4e-4", max_steps=1, progress=False)
    with pytest.raises(ValueError, match="training setting weight_decay takes a number"):
        autoencoders.train("ae", "digits", tmp_path / "run", max_steps=1, settings={"training.weight_decay": "1e-5"})
    assert not (tmp_path / "run").exists()


def test_training_lowers_the_validation_loss(tmp_path):
    import pandas as pd

    run = autoencoders.train("ae", "digits", tmp_path / "run", hidden=(64,), latent_dim=8, epochs=4, progress=False)
    validation = pd.read_csv(run / "metrics.csv")["val/loss"].dropna().to_numpy()
    assert len(validation) == 4 and validation[-1] < 0.9 * validation[0]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    settings = dict(latent_dim=4, hidden=(32,), batch_size=128, seed=3, progress=False)
    straight = autoencoders.train("vae", "digits", tmp_path / "straight", epochs=3, **settings)
    interrupted = autoencoders.train("vae", "digits", tmp_path / "resumed", epochs=1, **settings)
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    resumed = autoencoders.train("vae", "digits", interrupted, epochs=3, resume=True, progress=False)
    first, second = weights(straight), weights(resumed)
    # last.ckpt follows every epoch, whether or not the validation loss improved
    assert torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    import pandas as pd

    validation_epochs = pd.read_csv(resumed / "metrics.csv")["val/loss"].dropna()
    assert len(validation_epochs) == 3  # the resumed run kept the rows logged before the interruption
    steps_per_epoch = -(-len(autoencoders.load_dataset("digits").train) // 128)
    assert json.loads((resumed / "config.json").read_text())["training"]["steps_done"] == 3 * steps_per_epoch
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_seed_makes_runs_reproducible(tmp_path):
    settings = dict(latent_dim=4, hidden=(32,), max_steps=15, progress=False)
    a = weights(autoencoders.train("dae", "digits", tmp_path / "a", seed=1, **settings))
    b = weights(autoencoders.train("dae", "digits", tmp_path / "b", seed=1, **settings))
    c = weights(autoencoders.train("dae", "digits", tmp_path / "c", seed=2, **settings))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    table = tmp_path / "table.npy"
    clean = np.random.default_rng(0).random((300, 6)).astype(np.float32)
    np.save(table, clean)
    run = autoencoders.train("ae", str(table), tmp_path / "run", hidden=(8,), latent_dim=2, epochs=1, progress=False)
    checkpoint = run / "checkpoints" / "last.ckpt"
    good = checkpoint.read_bytes()
    steps_done = json.loads((run / "config.json").read_text())["training"]["steps_done"]
    broken = clean.copy()
    broken[::2] = 1e30  # the data goes bad between two sessions: its squared error overflows float32
    np.save(table, broken)
    with pytest.raises(NonFiniteLossError, match=rf"step {steps_done}: loss term\(s\) loss, recon .*not applied.*--lr"):
        autoencoders.train("ae", str(table), run, epochs=3, resume=True, progress=False)
    assert checkpoint.read_bytes() == good
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.isfinite(value).all() for value in state.values())


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    run = autoencoders.train(
        "ae", "digits", tmp_path / "run", hidden=(16,), latent_dim=2, epochs=20, lr=0.0, progress=False,
        settings={"training.patience": 2},
    )
    training = json.loads((run / "config.json").read_text())["training"]
    assert training["epochs_done"] == 3 and training["stopped_early"]


@pytest.mark.parametrize("model", ["vae", "aae-cluster"])  # one player; several, each reaching only its own parameters
def test_ddp_on_two_cpu_processes(model, tmp_path):
    # Lightning's DDP launcher starts the script again per rank, so the run goes through a script file
    import subprocess
    import sys

    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import autoencoders\n"
        "if __name__ == '__main__':\n"
        f"    autoencoders.train({model!r}, 'digits', {str(tmp_path / 'run')!r}, hidden=(32,), latent_dim=4, max_steps=12,\n"
        "        progress=False, settings={'training.strategy': 'ddp', 'training.devices': 2, 'training.accelerator': 'cpu'})\n"
    )
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True, timeout=300)
    training = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert training["steps_done"] == 12 and training["devices"] == 2
    assert torch.isfinite(torch.cat([w.flatten() for w in weights(tmp_path / "run").values()])).all()


def test_cosine_schedule_ends_with_the_run_whether_steps_or_the_wall_clock_end_it(tmp_path):
    import pandas as pd

    def logged_factors(run) -> np.ndarray:
        return pd.read_csv(run / "metrics.csv")["train/lr_factor"].dropna().to_numpy()

    settings = dict(hidden=(32,), latent_dim=4, progress=False)
    by_steps = autoencoders.train(
        "ae", "digits", tmp_path / "steps", max_steps=40, **settings,
        settings={"training.lr_schedule": "cosine", "training.log_every": 10},
    )
    logged_steps = np.array([9, 19, 29, 39])  # logs are written after every 10th batch
    assert np.allclose(logged_factors(by_steps), 0.5 * (1 + np.cos(np.pi * logged_steps / 40)), atol=1e-6)
    # planned for far more steps than 3 s allow: the budget ends the run, and the rate has reached zero by then
    by_time = autoencoders.train(
        "ae", "digits", tmp_path / "time", epochs=10_000, **settings,
        settings={"training.lr_schedule": "cosine", "training.log_every": 1, "training.max_time": "00:00:00:03"},
    )
    factors = logged_factors(by_time)
    assert len(factors) > 20 and factors[0] > 0.95 and factors[-1] < 0.05 and (np.diff(factors) <= 1e-9).all()


class StateRecorder(torch.nn.Module):
    """Two players on one weight each; every loss call records (player, step, state, what state held then)."""

    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        self.calls: list[tuple[str, int, dict, dict]] = []

    def first_loss(self, x, y=None, step=0, state=None):
        self.calls.append(("first", step, state, dict(state)))
        state["first"] = step
        return {"loss": self.first(x).pow(2).mean()}

    def second_loss(self, x, y=None, step=0, state=None):
        self.calls.append(("second", step, state, dict(state)))
        return {"loss": self.second(x).pow(2).mean()}

    def players(self):
        from autoencoders.models.base import Player

        return {"first": Player(self.first.parameters, self.first_loss), "second": Player(self.second.parameters, self.second_loss, repeats=2)}


def test_every_player_of_a_batch_gets_the_same_fresh_state():
    """The training module hands one new dict per batch to every player's loss, repeats included: what the first
    player puts there the second reads on that batch, and the next batch starts empty."""
    from autoencoders.training.fit import fit_model

    model = fit_model(StateRecorder(), torch.rand(32, 2), max_steps=3, batch_size=8, lr=1e-2)
    assert [(player, step) for player, step, _, _ in model.calls] == [
        (player, step) for step in range(3) for player in ("first", "second", "second")
    ]
    states = [model.calls[index : index + 3] for index in range(0, 9, 3)]
    for step, ((_, _, first, first_saw), (_, _, second, second_saw), (_, _, repeat, repeat_saw)) in enumerate(states):
        assert first is second is repeat and first_saw == {} and second_saw == repeat_saw == {"first": step}
    assert len({id(calls[0][2]) for calls in states}) == 3
