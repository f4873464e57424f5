"""VQ-VAE: EMA codebook, straight-through gradients, dead-code restarts, integer codes, the prior player; the
domain classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from autoencoders import train
from autoencoders.cli import app
from autoencoders.io import load, read_config
from autoencoders.metrics.classifier import domain_classifier, load_classifier, save_classifier, train_classifier
from autoencoders.models.base import Player
from autoencoders.models.vqvae import VQVAE, EMACodebook, GatedPixelCNN, VQVAEConfig
from autoencoders.training.module import AutoencoderModule

TINY = dict(input_shape=(1, 8, 8), hidden=(8, 8), latent_dim=4, codebook_size=8, residual_blocks=1,
            prior_channels=8, prior_layers=2, recon_loss="bce")


def make(**overrides) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(**{**TINY, **overrides}))


def clusters(centres: torch.Tensor, n: int, std: float) -> torch.Tensor:
    return centres[torch.randint(len(centres), (n,))] + std * torch.randn(n, centres.shape[1])


def test_ema_codebook_converges_on_cluster_centres():
    torch.manual_seed(0)
    centres = torch.tensor([[3.0, 3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, -3.0]])
    codebook = EMACodebook(4, 2, decay=0.99, epsilon=1e-5, dead_threshold=1.0)
    codebook.vectors.copy_(centres * 0.5 + 0.7)  # one entry per quadrant, each about 1.7 from its centre
    codebook.counts.fill_(64.0)  # as if used already: no restarts, only the moving averages move them
    codebook.sums.copy_(codebook.vectors * 64.0)
    for _ in range(600):
        flat = clusters(centres, 256, 0.2)
        codebook.update(flat, codebook.nearest(flat))
    distances = torch.cdist(centres, codebook.vectors)
    assert distances.min(dim=1).values.max() < 0.05  # every centre has an entry on it
    assert codebook.counts.sum() == pytest.approx(256, rel=0.01)  # the counts average the batch's 256 vectors


def test_codebook_seeds_itself_from_data_and_lands_on_the_centres():
    torch.manual_seed(1)
    centres = torch.tensor([[3.0, 3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, -3.0]])
    codebook = EMACodebook(16, 2, decay=0.99, epsilon=1e-5, dead_threshold=1.0)  # random init, far from the data
    for _ in range(300):
        flat = clusters(centres, 256, 0.2)
        codebook.update(flat, codebook.nearest(flat))
    used = codebook.vectors[codebook.counts > 1.0]
    assert torch.cdist(centres, used).min(dim=1).values.max() < 0.3  # every cluster is covered
    # and every used entry sits inside a cluster (entries sharing one split it, so they sit off its centre)
    assert torch.cdist(used, centres).min(dim=1).values.max() < 0.6


def test_dead_codes_are_restarted_from_encoder_outputs():
    torch.manual_seed(0)
    codebook = EMACodebook(8, 2, decay=0.99, epsilon=1e-5, dead_threshold=1.0)
    codebook.vectors.copy_(torch.cat([torch.randn(4, 2) * 0.1, torch.full((4, 2), 100.0)]))  # last 4: far away
    codebook.counts.copy_(torch.tensor([50.0] * 4 + [0.0] * 4))
    codebook.sums.copy_(codebook.vectors * codebook.counts.unsqueeze(1))
    flat = torch.randn(128, 2)
    indices = codebook.nearest(flat)
    assert int(indices.max()) < 4  # nothing chooses the far entries
    codebook.update(flat, indices)
    for entry in codebook.vectors[4:]:
        assert (flat - entry).abs().sum(1).min() < 1e-6  # each far entry is now one of the batch's vectors
    assert codebook.vectors[:4].abs().max() < 5  # the live entries were not restarted
    assert len(codebook.nearest(flat).unique()) > 4


def test_straight_through_passes_the_decoder_gradient_to_the_encoder():
    model = make(commitment=0.0)  # only the reconstruction term: any encoder gradient came through the quantizer
    x = torch.rand(16, 1, 8, 8)
    output = model(x)
    # forward: the decoder sees the codebook vectors (z_e + (z_q - z_e) equals z_q up to rounding)
    assert torch.allclose(output.decoded, model.decoder(output.latent), atol=1e-6)
    model.autoencoder_loss(x)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.codebook.vectors.grad is None  # the codebook moves by moving averages, not by gradients


def test_encode_gives_integers_that_decode_to_the_reconstruction():
    model = make()
    model.train()
    model.autoencoder_loss(torch.rand(32, 1, 8, 8))  # seed the codebook from data
    model.eval()
    x = torch.rand(6, 1, 8, 8)
    codes = model.encode(x)
    assert codes.dtype == torch.int64 and codes.shape == (6, model.code_size) == (6, 4)
    assert 0 <= int(codes.min()) and int(codes.max()) < 8
    assert torch.allclose(model.decode(codes), model.reconstruct(x))
    assert torch.allclose(model.decode(codes.float()), model.reconstruct(x))  # as read back from .npy / .parquet
    with pytest.raises(ValueError, match="whole numbers"):
        model.decode(codes.float() + 0.5)
    with pytest.raises(ValueError, match="0..7"):
        model.decode(codes + 8)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        model.decode(codes[:, :3])
    frames = model.interpolate(x[0], x[1], steps=5)
    assert frames.shape == (5, 1, 8, 8)
    assert torch.allclose(frames[0], model.reconstruct(x[:1])[0], atol=1e-6)
    assert torch.allclose(frames[-1], model.reconstruct(x[1:2])[0], atol=1e-6)


def test_prior_takes_the_codes_the_autoencoder_player_put_in_the_batch_state():
    """On a batch both players see (validation), the prior trains on the integer codes of the autoencoder's pass,
    read from the batch's state, not on a second quantization; called alone it quantizes the batch itself."""
    model = make().train()
    x = torch.rand(16, 1, 8, 8)
    encoder_passes = []
    model.encoder.register_forward_hook(lambda *_: encoder_passes.append(1))
    state = {}
    model.autoencoder_loss(x, state=state)
    assert state["codes"].dtype == torch.int64 and state["codes"].shape == (16, 2, 2)
    model.prior_loss(x, state=state)
    assert len(encoder_passes) == 1
    model.prior_loss(x)
    assert len(encoder_passes) == 2
    assert not any(value is x or (isinstance(value, tuple) and any(item is x for item in value)) for value in vars(model).values())


def test_pixelcnn_is_causal_in_raster_order():
    torch.manual_seed(0)
    prior = GatedPixelCNN(5, 8, 3)
    grid = torch.randint(5, (1, 4, 5))
    embedded = prior.embedding(grid).permute(0, 3, 1, 2).detach().requires_grad_(True)
    vertical = horizontal = embedded
    for layer in prior.layers:
        vertical, horizontal = layer(vertical, horizontal)
    logits = prior.head(horizontal)
    for row in range(4):
        for column in range(5):
            (gradient,) = torch.autograd.grad(logits[0, :, row, column].sum(), embedded, retain_graph=True)
            seen = gradient.abs().sum(1)[0] > 0
            before = torch.zeros(4, 5, dtype=torch.bool)
            before[:row] = True
            before[row, :column] = True
            assert torch.equal(seen, before)  # exactly the earlier positions: no leak, no blind spot


def test_optimizer_steps_count_start_stop_every_and_repeats():
    class Players(torch.nn.Module):
        def __init__(self, players):
            super().__init__()
            self._players = players

        def players(self):
            return self._players

    cases = [(1, 0, None, 1), (1, 5, None, 1), (2, 3, None, 1), (3, 0, 7, 1), (2, 4, 9, 1), (1, 20, None, 1), (1, 0, None, 5), (2, 3, 9, 3)]
    for every, start, stop, repeats in cases:
        player = Player(lambda: iter(()), lambda x, y, step: {}, every=every, start=start, stop=stop, repeats=repeats)
        module = AutoencoderModule(Players({"p": player}))
        for batches in (0, 1, 6, 10, 15):
            brute = repeats * sum(1 for b in range(batches) if b % every == 0 and start <= b < (stop if stop is not None else 10**9))
            assert module.optimizer_steps(batches) == brute


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs on digits: one stops where the prior starts (step 6), one goes on to step 10."""
    folder = tmp_path_factory.mktemp("vqvae")
    settings = {**{k: v for k, v in TINY.items() if k not in ("input_shape", "hidden", "latent_dim")},
                "prior_start": 6, "training.progress": False, "training.log_every": 2}
    common = dict(hidden=(8, 8), latent_dim=4, batch_size=32, seed=0, settings=settings)
    before = train("vqvae", "digits", folder / "before", max_steps=6, **common)
    after = train("vqvae", "digits", folder / "after", max_steps=10, **common)
    return before, after


def test_prior_player_waits_for_its_start_and_changes_only_the_prior(runs):
    before, after = load(runs[0]), load(runs[1])
    assert read_config(runs[1])["training"]["steps_done"] == 10
    assert int(before.prior_steps) == 0 and int(after.prior_steps) == 4
    torch.manual_seed(0)
    fresh = VQVAE(VQVAEConfig.from_dict(read_config(runs[0])["model"]["config"]))  # the runs' initial weights
    state_before, state_after, state_fresh = before.state_dict(), after.state_dict(), fresh.state_dict()
    for key in state_before:
        if key.startswith("prior."):
            assert torch.equal(state_before[key], state_fresh[key]), key  # no prior step before its start
        elif key != "prior_steps":
            assert torch.equal(state_before[key], state_after[key]), key  # after it, only the prior changes
    assert any(not torch.equal(state_before[k], state_after[k]) for k in state_before if k.startswith("prior."))
    assert any(not torch.equal(state_before[k], state_fresh[k]) for k in state_before if k.startswith("encoder."))
    with pytest.warns(UserWarning, match="never trained"):
        before.sample(2)
    assert after.sample(3).shape == (3, 1, 8, 8)


def test_save_load_round_trip(runs, tmp_path):
    model = load(runs[1])
    model.save_pretrained(tmp_path / "saved")
    again = VQVAE.from_pretrained(tmp_path / "saved")
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model.encode(x), again.encode(x))
    torch.manual_seed(3)
    first = model.sample(4, temperature=0.7)
    torch.manual_seed(3)
    assert torch.equal(first, again.sample(4, temperature=0.7))


def test_cli_encode_exports_integers_that_decode_back(runs, tmp_path):
    runner = CliRunner()
    codes_file, decoded_file = tmp_path / "codes.npy", tmp_path / "decoded.npy"
    result = runner.invoke(app, ["encode", str(runs[1]), "-o", str(codes_file)])
    assert result.exit_code == 0, result.output
    codes = np.load(codes_file)
    assert codes.dtype == np.int64 and codes.shape[1] == 4
    result = runner.invoke(app, ["decode", str(runs[1]), str(codes_file), "-o", str(decoded_file)])
    assert result.exit_code == 0, result.output
    model = load(runs[1])
    from autoencoders.io import load_run_data

    test_items = load_run_data(runs[1]).test
    assert np.allclose(np.load(decoded_file), model.reconstruct(test_items).numpy(), atol=1e-6)
    result = runner.invoke(app, ["sample", str(runs[1]), "-n", "4", "-o", str(tmp_path / "samples.npy")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "samples.npy").shape == (4, 1, 8, 8)


def test_classifier_learns_a_separable_task_and_round_trips(tmp_path):
    torch.manual_seed(0)
    labels = torch.randint(2, (400,))
    images = 0.3 * torch.rand(400, 1, 8, 8)
    images[labels == 0, :, :, :4] += 0.6  # class 0 bright on the left, class 1 on the right
    images[labels == 1, :, :, 4:] += 0.6
    classifier = train_classifier(images[:300], labels[:300], 2, epochs=4, batch_size=32, seed=0)
    assert classifier.accuracy(images[300:], labels[300:]) >= 0.95
    assert classifier.features(images[:5]).shape == (5, 128)
    save_classifier(classifier, tmp_path / "clf", {"dataset": "toy"})
    again = load_classifier(tmp_path / "clf")
    assert torch.equal(again.logits(images[300:]), classifier.logits(images[300:]))
    assert again.info["dataset"] == "toy"


def test_domain_classifier_is_trained_once_then_loaded(tmp_path):
    # 1258 training images are 10 batches: 2 epochs would be 20 steps, so it trains 4 epochs to reach 40
    first = domain_classifier("digits", cache_dir=tmp_path, epochs=2, min_steps=40)
    folder = tmp_path / "classifiers" / "digits"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no pickle
    info = json.loads((folder / "config.json").read_text())
    assert info["dataset"] == "digits" and 0.0 <= info["test_accuracy"] <= 1.0
    assert (info["epochs"], info["steps"]) == (4, 40)
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    second = domain_classifier("digits", cache_dir=tmp_path, min_steps=40)
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime  # loaded, not retrained
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(first.logits(x), second.logits(x))
    domain_classifier("digits", cache_dir=tmp_path, min_steps=60)  # a cache trained for fewer steps is refitted
    assert json.loads((folder / "config.json").read_text())["steps"] == 60
    with pytest.raises(ValueError, match="class labels"):
        domain_classifier("sine", cache_dir=tmp_path)


def test_early_stopping_and_best_checkpoint_start_afresh_when_the_prior_starts(tmp_path):
    # the prior starts after two epochs; the autoencoder is frozen from then on, so its val/loss stops
    # improving: watching it would stop the run at once and keep the weights of before the prior trained
    from autoencoders.data import load_dataset

    steps_per_epoch = -(-len(load_dataset("digits").train) // 32)
    settings = {**{k: v for k, v in TINY.items() if k not in ("input_shape", "hidden", "latent_dim")},
                "prior_start": 2 * steps_per_epoch, "training.progress": False, "training.patience": 1}
    run = train("vqvae", "digits", tmp_path / "run", hidden=(8, 8), latent_dim=4, batch_size=32, epochs=4, seed=0, settings=settings)
    assert int(load(run).prior_steps) > 0  # the kept weights are from the prior's phase
    assert read_config(run)["training"]["epochs_done"] >= 3
