"""Sequences: the rnn and crnn archs, the VRNN (series and text), time-series tables and the sequence datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import autoencoders
from autoencoders.data import DataError, dataset_status, load_dataset
from autoencoders.data.sequences import ALPHABET, corpus, render_moving_digits, to_text
from autoencoders.data.synthetic import sample_sines
from autoencoders.models import MODELS
from autoencoders.models.vrnn import VRNN, VRNNConfig, gaussian_kl_between
from autoencoders.report import write_report
from autoencoders.training.run import model_settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def build(name: str, **settings):
    cls = MODELS[name]
    torch.manual_seed(0)
    return cls(cls.config_class(**settings))


# -- the rnn and crnn archs -------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("name", ["ae", "vae"])
def test_rnn_and_crnn_shapes(name, cell):
    series = build(name, input_shape=(12, 3), arch="rnn", hidden=(16, 8), cell=cell, latent_dim=4, recon_loss="mse")
    x = torch.randn(5, 12, 3)
    assert series.encode(x).shape == (5, 4)
    assert series.reconstruct(x).shape == x.shape
    frames = build(name, input_shape=(3, 1, 16, 16), arch="crnn", hidden=(4, 8, 16), cell=cell, latent_dim=4, recon_loss="bce")
    video = torch.rand(2, 3, 1, 16, 16)
    assert frames.encode(video).shape == (2, 4)
    decoded = frames.decode(frames.encode(video))
    assert decoded.shape == video.shape and 0 <= float(decoded.min()) and float(decoded.max()) <= 1


def test_recurrent_archs_reject_wrong_item_shapes():
    with pytest.raises(ValueError, match=r"rnn arch needs sequences of shape \(length, channels\)"):
        build("ae", input_shape=(1, 8, 8), arch="rnn")
    with pytest.raises(ValueError, match=r"crnn arch needs sequences of images"):
        build("ae", input_shape=(12, 3), arch="crnn")
    with pytest.raises(ValueError, match="conv channels then the recurrent width"):
        build("ae", input_shape=(3, 1, 16, 16), arch="crnn", hidden=(8,))
    with pytest.raises(ValueError, match="unknown recurrent cell 'rnn'"):
        build("ae", input_shape=(12, 3), arch="rnn", cell="rnn")


def test_tiny_rnn_vae_training_run_lowers_the_validation_loss(tmp_path):
    run = autoencoders.train(
        "vae", "sine", tmp_path / "run", arch="rnn", hidden=(32,), latent_dim=4, epochs=2, batch_size=32, lr=3e-3,
        progress=False, settings={"data.train_size": 192, "data.val_size": 64, "data.length": 16, "data.channels": 2,
                                  "data.test_size": 16},
    )
    validation = pd.read_csv(run / "metrics.csv")["val/loss"].dropna().to_numpy()
    assert len(validation) == 2 and validation[-1] < validation[0]
    model = autoencoders.load(run)
    assert model.config.arch == "rnn" and model.sample(3).shape == (3, 16, 2)


def test_moving_digits_move_and_bounce():
    # one bright square "digit" starting in the top-left corner, moving 5 px right per frame in a 40 px frame
    digit = torch.zeros(1, 1, 28, 28)
    digit[..., 10:14, 10:14] = 1.0
    motion = torch.tensor([[[0.0, 0.0, 5.0, 0.0]]])
    frames = render_moving_digits(digit, motion, length=6, image_size=40)
    assert frames.shape == (1, 6, 1, 40, 40)
    columns = [int(frames[0, t, 0].sum(0).nonzero()[0]) for t in range(6)]
    assert columns == [10, 15, 20, 19, 14, 11]  # reaches the right wall (free range 12) at frame 2.4, comes back
    assert torch.allclose(frames.sum((2, 3, 4)), torch.full((1, 6), 16.0))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason=f"no MNIST files under {SHARED_DATA}")
def test_crnn_autoencoder_trains_on_moving_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOENCODERS_DATA", str(SHARED_DATA))
    assert dataset_status("moving-digits") == "cached"
    options = {"data.train_size": 64, "data.test_size": 8, "data.val_size": 16, "data.length": 4, "data.image_size": 32}
    run = autoencoders.train(
        "ae", "moving-digits", tmp_path / "run", arch="crnn", hidden=(8, 16, 32), latent_dim=8, epochs=2,
        batch_size=16, lr=3e-3, progress=False, settings=options,
    )
    validation = pd.read_csv(run / "metrics.csv")["val/loss"].dropna().to_numpy()
    assert validation[-1] < validation[0]
    data = load_dataset("moving-digits", train_size=64, test_size=8, val_size=8, length=4, image_size=32)
    assert data.train.shape == (64, 4, 1, 32, 32) and data.train_labels.shape == (64, 2)
    write_report(run)  # sequences of images are pictured as rows of frames
    with Image.open(run / "pictures" / "reconstructions.png") as picture:
        assert picture.width < picture.height  # 4 frames a row, 4 sequences each above its reconstruction


# -- VRNN on series ---------------------------------------------------------------------------------------
def test_gaussian_kl_between_matches_torch():
    mean_q, mean_p, log_var_q, log_var_p = torch.randn(4, 4, 3).unbind(0)
    q = torch.distributions.Normal(mean_q, (0.5 * log_var_q).exp())
    p = torch.distributions.Normal(mean_p, (0.5 * log_var_p).exp())
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p), expected, atol=1e-5)


@pytest.fixture(scope="module")
def trained_series():
    """A tiny VRNN trained on 1-channel sine series of 20 steps, with its held-out -ELBO before and after.

    The series are the first 20 steps of 64-step ones: at most 8 cycles per 64 steps, so 8 or more steps a cycle.
    """
    torch.manual_seed(0)
    train = sample_sines(512, 64, 1, torch.Generator().manual_seed(1))[:, :20].contiguous()
    held_out = sample_sines(128, 64, 1, torch.Generator().manual_seed(2))[:, :20].contiguous()
    model = VRNN(VRNNConfig(input_shape=(20, 1), latent_dim=4, state_size=32, feature_size=32, value_range=(-1.0, 1.0)))

    def held_out_bound() -> float:
        torch.manual_seed(3)
        with torch.no_grad():
            return float(model.negative_elbo(held_out).mean())

    before = held_out_bound()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(80):
        batch = train[torch.randint(len(train), (64,), generator=torch.Generator().manual_seed(step))]
        terms = model.loss(batch, step=step)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    return model.eval(), held_out, before, held_out_bound()


def test_vrnn_log_likelihood_improves_with_training(trained_series):
    model, held_out, before, after = trained_series
    # nats per 20-step series; noise of std 0.05 alone allows about 20 * -1.6 = -32
    assert after < before - 20, (before, after)
    torch.manual_seed(4)
    with torch.no_grad():
        importance_sampled = model.log_marginal_likelihood(held_out, samples=20).mean()
        single = model.log_importance_weights(held_out, samples=1).mean()
    assert float(importance_sampled) >= float(single) - 0.05  # the 20-sample bound is at least the ELBO


def test_vrnn_generates_encodes_and_interpolates(trained_series):
    model, held_out, _, _ = trained_series
    assert model.sample(6).shape == (6, 20, 1)
    assert model.sample(2, length=40).shape == (2, 40, 1)
    codes = model.encode(held_out[:5])
    assert codes.shape == (5, 20 * 4) == (5, model.code_size)
    reconstruction = model.reconstruct(held_out[:5])
    assert reconstruction.shape == (5, 20, 1)
    # each step from its latent and the true past: far closer to the series than the series is to zero
    error = (reconstruction - held_out[:5]).square().mean().sqrt()
    assert float(error) < 0.5 * float(held_out[:5].square().mean().sqrt())
    decoded = model.decode(codes)
    assert decoded.shape == (5, 20, 1) and torch.allclose(decoded[0], model.decode(codes[:1])[0], atol=1e-5)
    frames = model.interpolate(held_out[0], held_out[1], steps=5)
    assert frames.shape == (5, 20, 1) and torch.allclose(frames[-1], decoded[1], atol=1e-5)
    assert model.score_steps(held_out[:3], samples=2).shape == (3, 20)


def test_vrnn_per_step_score_peaks_at_an_injected_spike(trained_series):
    model, held_out, _, _ = trained_series
    series = held_out[:32].clone()
    positions = torch.randint(4, 20, (32,), generator=torch.Generator().manual_seed(5))
    series[torch.arange(32), positions, 0] += torch.where(series[torch.arange(32), positions, 0] > 0, -0.8, 0.8)
    torch.manual_seed(6)
    scores = model.score_steps(series, samples=4)
    # the highest score is at the spike or right after it, where the spiked value misleads the prediction
    peaks = scores.argmax(1)
    assert ((peaks == positions) | (peaks == positions + 1)).float().mean() >= 0.9
    spike_scores = scores[torch.arange(32), positions]
    clean_scores = model.score_steps(held_out[:32], samples=4)[torch.arange(32), positions]
    assert (spike_scores > clean_scores + 5).all()


def test_vrnn_rejects_what_it_cannot_model():
    with pytest.raises(ValueError, match=r"sequences of shape \(length, channels\)"):
        VRNN(VRNNConfig(input_shape=(10,)))
    with pytest.raises(ValueError, match="categorical"):
        VRNN(VRNNConfig(input_shape=(10, 3), recon_loss="l1"))
    model = VRNN(VRNNConfig(input_shape=(10, 3)))
    with pytest.raises(ValueError, match=r"takes sequences of shape \(length, 3\)"):
        model.loss(torch.zeros(4, 10, 2))


# -- VRNN on text -----------------------------------------------------------------------------------------
def test_text_corpus_and_windows():
    text = corpus()
    assert len(text) > 300_000 and set(text) <= set(ALPHABET)
    data = load_dataset("text", length=32, limit=50)
    assert data.train.shape == (50, 32, len(ALPHABET)) and data.preprocessing["alphabet"] == ALPHABET
    assert (data.train.sum(-1) == 1).all()
    assert "".join(to_text(data.train[:3])) == text[:96]  # consecutive windows of the corpus
    assert model_settings("vrnn", data, {})["recon_loss"] == "categorical"  # one-hot characters: a categorical decoder


def test_vrnn_text_samples_are_characters_of_the_corpus():
    data = load_dataset("text", length=16, limit=1024)
    model = build("vrnn", input_shape=(16, len(ALPHABET)), recon_loss="categorical", latent_dim=4, state_size=32, feature_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(40):
        batch = data.train[torch.randint(len(data.train), (32,), generator=torch.Generator().manual_seed(step))]
        terms = model.loss(batch, step=step)
        first = first if first is not None else float(terms["recon"])
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    assert float(terms["recon"]) < 0.8 * first
    torch.manual_seed(0)
    samples = model.sample(16)
    assert samples.shape == (16, 16, len(ALPHABET))
    assert ((samples == 0) | (samples == 1)).all() and (samples.sum(-1) == 1).all()  # one character per step
    lines = to_text(samples)
    assert all(len(line) == 16 and set(line) <= set(ALPHABET) for line in lines)
    # the model has learned the corpus's character frequencies: the blank is by far its most common character
    counts = pd.Series(list("".join(lines))).value_counts()
    assert counts.index[0] == " ", counts.head()


def test_cli_samples_text_as_lines_and_series_as_line_plots(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from autoencoders.cli import app
    from autoencoders.uses.items import TEXT_SEPARATOR

    runner = CliRunner()
    text = autoencoders.train("vrnn", "text", tmp_path / "text", max_steps=3, batch_size=16, progress=False,
                              settings={"data.length": 12, "data.limit": 256, "latent_dim": 2, "state_size": 8, "feature_size": 8})
    result = runner.invoke(app, ["sample", str(text), "-n", "3", "-o", str(tmp_path / "s.txt")])
    assert result.exit_code == 0, result.output
    texts = (tmp_path / "s.txt").read_text().split(f"\n{TEXT_SEPARATOR}\n")  # samples may hold newlines
    assert texts[-1] == "" and len(texts) == 4
    assert all(len(text) == 12 and set(text) <= set(ALPHABET) for text in texts[:3])
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["sample", str(text), "-n", "2"]).exit_code == 0
    assert (tmp_path / "samples.txt").read_text().count(TEXT_SEPARATOR) == 2  # a text model's default output is text
    result = runner.invoke(app, ["sample", str(text), "-o", str(tmp_path / "s.png")])
    assert result.exit_code == 2 and ".txt" in result.output

    series = autoencoders.train("vrnn", "sine", tmp_path / "sine", max_steps=3, batch_size=16, progress=False,
                                settings={"data.length": 16, "data.train_size": 64, "data.val_size": 16, "data.test_size": 16, "latent_dim": 2, "state_size": 8, "feature_size": 8})
    result = runner.invoke(app, ["sample", str(series), "-n", "4", "-o", str(tmp_path / "series.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "series.png").size[0] > 200  # a figure of line plots, not a tiny image grid
    result = runner.invoke(app, ["sample", str(series), "-o", str(tmp_path / "series.txt")])
    assert result.exit_code == 2 and "text models" in result.output


# -- time-series tables -----------------------------------------------------------------------------------
def test_csv_windows_keep_time_order_and_row_ids(tmp_path):
    rows = 300
    frame = pd.DataFrame({
        "time": pd.date_range("2024-01-01", periods=rows, freq="min").astype(str),
        "level": np.sin(np.arange(rows) / 7.0),
        "load": np.arange(rows, dtype=float),
        "row": [f"r{index:03d}" for index in range(rows)],
    }).sample(frac=1.0, random_state=0)  # shuffled: the loader must sort by time
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(path, time_column="time", window=20, stride=10, id_column="row")
    assert data.item_shape == (20, 2) and data.preprocessing["columns"] == ["level", "load"]
    # 240 / 30 / 30 rows in time order: windows every 10 rows inside each split
    assert (len(data.train), len(data.val), len(data.test)) == (23, 2, 2)
    assert data.ids["train"][1] == [f"r{index:03d}" for index in range(10, 30)]
    assert data.ids["test"][0][0] == "r270" and data.ids["val"][-1][-1] == "r269"
    load = data.test[0, :, 1] * data.preprocessing["std"][1] + data.preprocessing["mean"][1]
    assert torch.allclose(load, torch.arange(270.0, 290.0), atol=1e-3)  # each window holds its rows, in order
    with pytest.raises(DataError, match="needs both its time column and a window length"):
        load_dataset(path, window=20)
    with pytest.raises(DataError, match="shorter than one window"):
        load_dataset(path, time_column="time", window=100, id_column="row")
