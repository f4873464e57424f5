"""Every model family: shapes, learning on a tiny real batch, exact save/load, the interface."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from autoencoders.catalog import GENERATIVE, MODEL_DESCRIPTIONS
from autoencoders.io import ModelFileError, load
from autoencoders.models import MODELS

ARCHS = {"mlp": (1, 8, 8), "conv": (1, 8, 8), "acai": (1, 8, 8)}


@pytest.fixture(scope="module")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.images[:64] / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(digits.target[:64])


def make(name: str, arch: str = "mlp", **overrides):
    cls = MODELS[name]
    settings = dict(input_shape=(1, 8, 8), arch=arch, latent_dim=8, recon_loss="bce", scales=1, depth=8)
    if cls.conditional:
        settings["num_classes"] = 10
    if name == "beta-tcvae":  # its estimator needs the training set's size, which training fills in
        settings["dataset_size"] = 64
    settings.update(overrides)
    torch.manual_seed(0)
    return cls(cls.config_class(**settings))


def test_catalog_lists_exactly_the_model_classes():
    assert set(MODEL_DESCRIPTIONS) == set(MODELS)
    assert all(cls.name == name for name, cls in MODELS.items())  # the catalog's key is the class's own name
    assert GENERATIVE == {name for name, cls in MODELS.items() if cls.generative}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("name", list(MODELS))
def test_shapes(name, arch, digits_batch):
    x, y = digits_batch
    if name == "vqvae" and arch != "conv":  # it has its own conv networks and refuses other archs clearly
        with pytest.raises(ValueError, match="--arch conv"):
            make(name, arch)
        return
    if name == "bagged-ae" and arch != "mlp":  # its members are MLPs over the item's values
        with pytest.raises(ValueError, match="--arch mlp"):
            make(name, arch)
        return
    # acai keeps a spatial latent: 8x8 halved once is 4x4, so the code is a multiple of 16
    model = make(name, arch, latent_dim=16 if arch == "acai" else 8)
    labels = y if model.conditional else None
    code = model.encode(x, labels)
    assert code.shape == (64, model.code_size)
    assert model.decode(code, labels).shape == x.shape
    assert model.reconstruct(x, labels).shape == x.shape
    # binary losses decode to probabilities
    assert 0 <= float(model.decode(code, labels).min()) and float(model.decode(code, labels).max()) <= 1
    if model.generative:
        sample_labels = torch.arange(5) if model.conditional else None
        assert model.sample(5, sample_labels).shape == (5, 1, 8, 8)
    frames = model.interpolate(x[0], x[1], steps=7, y1=labels[0] if model.conditional else None, y2=labels[1] if model.conditional else None)
    assert frames.shape == (7, 1, 8, 8)
    assert torch.allclose(frames[0], model.reconstruct(x[:1], labels[:1] if model.conditional else None)[0], atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_decreases_on_a_real_batch(name, digits_batch):
    x, y = digits_batch
    model = make(name, "conv" if name == "vqvae" else "mlp")
    labels = y if model.conditional else None
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        before = model.loss(x, labels)["recon"].item()
    model.train()
    for step in range(60):
        terms = model.loss(x, labels, step=step)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        after = model.loss(x, labels)["recon"].item()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_gives_identical_outputs(name, tmp_path, digits_batch):
    x, y = digits_batch
    model = make(name, "mlp" if name == "bagged-ae" else "conv").eval()
    labels = y if model.conditional else None
    model.save_pretrained(tmp_path / "saved")
    loaded = MODELS[name].from_pretrained(tmp_path / "saved")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded.encode(x, labels), model.encode(x, labels))
    assert torch.equal(loaded.reconstruct(x, labels), model.reconstruct(x, labels))


def test_loading_errors_are_clear(tmp_path):
    model = make("vae")
    model.save_pretrained(tmp_path / "vae")
    with pytest.raises(ModelFileError, match="holds a 'vae' model, not a 'ae'"):
        MODELS["ae"].from_pretrained(tmp_path / "vae")
    weights = tmp_path / "vae" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        load(tmp_path / "vae")
    # weights of a wider model under this config
    make("vae", latent_dim=12).save_pretrained(tmp_path / "wide")
    (tmp_path / "vae" / "model.safetensors").write_bytes((tmp_path / "wide" / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="shape mismatch"):
        load(tmp_path / "vae")
    with pytest.raises(ModelFileError, match="does not exist"):
        load(tmp_path / "nowhere")


def test_dae_corruptions_stay_in_range_and_differ():
    x = torch.rand(256, 1, 8, 8)
    for noise in ("masking", "salt-and-pepper"):
        model = make("dae", noise=noise, noise_level=0.5, value_range=(0.0, 1.0))
        corrupted = model.corrupt(x)
        changed = (corrupted != x).float().mean().item()
        assert 0.3 < changed < 0.7
        assert corrupted.min() >= 0 and corrupted.max() <= 1
    gaussian = make("dae", noise="gaussian", noise_level=0.3).corrupt(x)
    assert abs((gaussian - x).std().item() - 0.3) < 0.02
    with pytest.raises(ValueError, match="unknown noise"):
        make("dae", noise="pink")


def test_kl_schedules():
    model = make("beta-vae", beta=4.0, kl_schedule="linear", kl_warmup_steps=100)
    assert model.kl_weight(0) == 0 and model.kl_weight(50) == 2.0 and model.kl_weight(500) == 4.0
    cyclical = make("vae", kl_schedule="cyclical", kl_warmup_steps=100)
    assert cyclical.kl_weight(25) == 0.5 and cyclical.kl_weight(75) == 1.0 and cyclical.kl_weight(125) == 0.5


def test_importance_sampling_bound_tightens(digits_batch):
    x, _ = digits_batch
    model = make("vae")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(100):
        loss = model.loss(x)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = model.log_importance_weights(x, samples=200).mean(0)
        log_px = model.log_marginal_likelihood(x, samples=200)
    # log p(x) >= E[ELBO] (Jensen), and the gap is real for a trained VAE
    assert (log_px - elbo).mean() > 0.1


def test_cvae_samples_follow_the_label(digits_batch):
    model = make("cvae")
    with pytest.raises(ValueError, match="needs labels"):
        model.encode(digits_batch[0])
    z = torch.zeros(2, 8)
    zero, one = model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([1, 1]))
    assert not torch.allclose(zero, one)
