"""The hierarchical VAE, the importance-weighted bound (IWAE) and the denoising VAE."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch.distributions import Bernoulli, Normal

import autoencoders
from autoencoders.corruption import corrupt
from autoencoders.io import load
from autoencoders.metrics import evaluate_model
from autoencoders.models import MODELS
from autoencoders.models.cvae import CVAE, CVAEConfig
from autoencoders.models.hvae import HVAE, HVAEConfig
from autoencoders.models.vae import DVAE, VAE, DVAEConfig, VAEConfig


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    # binarized so that the Bernoulli decoder is an exact likelihood
    x = torch.tensor(data.images / 16.0 > 0.5, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(data.target)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def settings(**overrides) -> dict:
    return {**dict(input_shape=(1, 8, 8), hidden=(64,), latent_dim=8, recon_loss="bce"), **overrides}


def fit(model, x: torch.Tensor, steps: int, lr: float = 3e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        batch = x[torch.randint(len(x), (128,))]
        loss = model.loss(batch, step=step)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained_vae(digits) -> VAE:
    torch.manual_seed(0)
    return fit(VAE(VAEConfig(**settings())), digits[0], steps=300)


@pytest.fixture(scope="module")
def trained_hvae(digits) -> HVAE:
    torch.manual_seed(0)
    return fit(HVAE(HVAEConfig(**settings(ladder_width=64))), digits[0], steps=300)


# -- the importance-weighted bound ----------------------------------------------------------------------
def test_one_sample_bound_is_the_single_sample_elbo_with_the_same_noise(trained_vae, digits):
    model, x = trained_vae, digits[0][:64]
    torch.manual_seed(5)
    bound = model.log_marginal_likelihood(x, samples=1)
    # the same noise, scored independently with torch.distributions
    torch.manual_seed(5)
    mean, log_var = model.posterior(x)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    log_px = Bernoulli(logits=model.decode_raw(z)).log_prob(x).flatten(1).sum(1)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
    log_qz = Normal(mean, torch.exp(0.5 * log_var)).log_prob(z).sum(1)
    torch.testing.assert_close(bound, log_px + log_pz - log_qz, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("fixture", ["trained_vae", "trained_hvae"])
def test_one_sample_bound_equals_the_analytic_elbo_in_expectation(fixture, digits, request):
    model, x = request.getfixturevalue(fixture), digits[0][:16]
    torch.manual_seed(0)
    with torch.no_grad():
        draws = model.log_importance_weights(x, samples=2000)  # (2000, 16): K=1 bounds, 2000 draws each
        elbos = -model.negative_elbo(x.repeat(200, 1, 1, 1)).view(200, 16)  # closed-form KL, sampled recon
    standard_error = torch.sqrt(draws.var(0) / len(draws) + elbos.var(0) / len(elbos))
    gap = draws.mean(0) - elbos.mean(0)
    assert torch.all(gap.abs() < 4 * standard_error), (gap, standard_error)


@pytest.mark.parametrize("fixture", ["trained_vae", "trained_hvae"])
def test_bound_grows_with_the_number_of_samples_on_a_trained_model(fixture, digits, request):
    model, x = request.getfixturevalue(fixture), digits[0][:128]
    torch.manual_seed(0)
    with torch.no_grad():
        bounds = [model.log_marginal_likelihood(x, samples=k).mean().item() for k in (1, 5, 50, 500)]
    assert bounds[0] < bounds[1] < bounds[2] < bounds[3], bounds
    assert bounds[3] - bounds[0] > 0.3, bounds  # a trained model's posterior is not exact: the gap is real


@pytest.mark.parametrize(
    "model",
    [
        VAE(VAEConfig(**settings(iwae_samples=4))),
        HVAE(HVAEConfig(**settings(iwae_samples=4))),
        CVAE(CVAEConfig(**settings(iwae_samples=4))),
    ],
    ids=["vae", "hvae", "cvae"],
)
def test_iwae_samples_makes_the_loss_the_importance_weighted_bound(model, digits):
    x, y = digits[0][:16], digits[1][:16]
    labels = y if model.conditional else None
    model.eval()
    torch.manual_seed(2)
    terms = model.loss(x, labels)
    torch.manual_seed(2)
    log_weights = model.log_importance_weights(x, labels, samples=4)
    expected = torch.logsumexp(log_weights, dim=0) - math.log(4)
    torch.testing.assert_close(terms["loss"], -expected.mean())
    torch.testing.assert_close(terms["iwae_bound"], expected.mean())
    assert terms["iwae_bound"] >= terms["elbo"]  # Jensen, per item and so on average
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_the_iwae_model_trains_on_five_samples_by_default(digits):
    model = MODELS["iwae"](MODELS["iwae"].config_class(**settings()))
    assert model.config.iwae_samples == 5 and "iwae_bound" in model.loss(digits[0][:8])


def test_bad_settings_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="iwae_samples"):
        VAE(VAEConfig(**settings(iwae_samples=0)))
    with pytest.raises(ValueError, match="free_bits"):
        HVAE(HVAEConfig(**settings(iwae_samples=5, free_bits=0.5)))
    with pytest.raises(ValueError, match="at least 2 stochastic layers"):
        HVAE(HVAEConfig(**settings(stochastic_layers=1)))
    with pytest.raises(ValueError, match="merge"):
        HVAE(HVAEConfig(**settings(merge="sum")))
    with pytest.raises(ValueError, match="noise"):
        DVAE(DVAEConfig(**settings(noise="pink")))
    with pytest.raises(ValueError, match="fraction"):
        DVAE(DVAEConfig(**settings(noise="masking", noise_level=1.5)))


# -- the hierarchical VAE -----------------------------------------------------------------------------
def test_precision_weighted_merge_is_the_product_of_the_two_gaussians():
    model = HVAE(HVAEConfig(**settings()))
    mean_hat, log_var_hat = torch.randn(5, 3), torch.randn(5, 3)
    prior_mean, prior_log_var = torch.randn(5, 3), torch.randn(5, 3)
    mean, log_var = model.merge(mean_hat, log_var_hat, prior_mean, prior_log_var)
    precision_hat, precision_prior = torch.exp(-log_var_hat), torch.exp(-prior_log_var)
    torch.testing.assert_close(torch.exp(-log_var), precision_hat + precision_prior)
    torch.testing.assert_close(mean, (mean_hat * precision_hat + prior_mean * precision_prior) / (precision_hat + precision_prior))


def test_layers_halve_upwards_and_the_code_holds_them_all():
    model = HVAE(HVAEConfig(**settings(latent_dim=16, stochastic_layers=3)))
    assert model.layer_sizes == [16, 8, 4] and model.code_size == 28
    x = torch.rand(4, 1, 8, 8)
    assert model.encode(x).shape == (4, 28)
    assert model(x).extras["layer_kl"].shape == (4, 3)


def test_free_bits_leave_layers_below_the_floor_unpenalised(digits):
    model = HVAE(HVAEConfig(**settings(free_bits=1000.0)))
    terms = model.loss(digits[0][:16])
    # every layer's KL is far below 1000 nats: each costs exactly the floor, whatever its value
    torch.testing.assert_close(terms["loss"] - terms["recon"], torch.tensor(2000.0))
    assert 0 < terms["kl_1"] < 1000 and 0 <= terms["kl_2"] < 1000


@pytest.mark.parametrize("merge", ["precision", "residual"])
def test_hvae_trains_samples_saves_and_scores(merge, tmp_path):
    import pandas as pd

    run = autoencoders.train(
        "hvae", "digits", tmp_path / "run", hidden=(64,), latent_dim=8, batch_size=64, epochs=4, lr=3e-3,
        progress=False, settings={"merge": merge, "ladder_width": 64, "training.log_every": 10},
    )
    metrics = pd.read_csv(run / "metrics.csv")
    validation = metrics["val/loss"].dropna().to_numpy()
    assert validation[-1] < validation[0], validation
    assert {"val/kl_1", "val/kl_2", "train/kl_1", "train/kl_2"} <= set(metrics.columns)  # KL per layer logged

    model = load(run)
    again = HVAE.from_pretrained(run)
    x = autoencoders.load_dataset("digits").test[:32]
    torch.testing.assert_close(model.encode(x), again.encode(x))
    torch.manual_seed(0)
    samples = model.sample(6)
    assert samples.shape == (6, 1, 8, 8) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    torch.manual_seed(0)
    assert torch.equal(samples, again.sample(6))

    scores = autoencoders.evaluate(run, metrics=["nll", "neg_elbo", "kl"], samples=200)
    assert scores["kl"] > 0 and scores["nll"] < scores["neg_elbo"], scores
    untrained = evaluate_model(HVAE(model.config), autoencoders.load_dataset("digits"), ["nll"], samples=200)
    assert scores["nll"] < 0.8 * untrained["nll"], (scores, untrained)


# -- the denoising VAE --------------------------------------------------------------------------------
def test_dvae_encodes_corrupted_input_and_scores_the_clean_one(digits):
    x = digits[0][:64]
    model = DVAE(DVAEConfig(**settings(noise="masking", noise_level=0.4)))
    seen: list[torch.Tensor] = []
    model.encoder.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))

    model.train()
    torch.manual_seed(1)
    terms = model.loss(x)
    # masking sets a 0.4 fraction of the values to 0: of the digits' ones, about 40 % are gone
    assert torch.all(seen[-1] <= x) and 0.3 < (seen[-1][x == 1] == 0).float().mean() < 0.5
    # the same draws again: corruption, then the posterior sample; the loss compares with clean x
    torch.manual_seed(1)
    corrupted = corrupt(x, "masking", 0.4, (0.0, 1.0))
    torch.testing.assert_close(corrupted, seen[-1])
    output = model(corrupted)
    torch.testing.assert_close(terms["recon"], -model.log_likelihood(output.decoded, x).mean())
    assert not torch.allclose(terms["recon"], -model.log_likelihood(output.decoded, corrupted).mean())

    model.eval()  # evaluation (and the NLL) encodes the clean input
    model.loss(x)
    assert torch.equal(seen[-1], x)


def test_dvae_with_iwae_samples_weights_clean_targets(digits):
    x = digits[0][:16]
    model = DVAE(DVAEConfig(**settings(noise="salt-and-pepper", noise_level=0.2, iwae_samples=3))).train()
    torch.manual_seed(4)
    terms = model.loss(x)
    torch.manual_seed(4)
    corrupted = corrupt(x, "salt-and-pepper", 0.2, (0.0, 1.0))
    log_px, log_ratio = model.importance_terms(x, samples=3, source=corrupted)
    torch.testing.assert_close(terms["loss"], -(torch.logsumexp(log_px + log_ratio, 0) - math.log(3)).mean())
