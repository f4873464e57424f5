"""FactorVAE, β-TCVAE, the disentanglement metrics (MIG, FactorVAE score) and latent traversals."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from autoencoders import plots
from autoencoders.data import load_dataset
from autoencoders.data.synthetic import SPRITE_FACTOR_SIZES, sample_factors
from autoencoders.metrics import evaluate_model
from autoencoders.metrics.disentanglement import factor_score_of, latent_traversals, mig, mutual_information_gap
from autoencoders.models import MODELS
from autoencoders.models.beta_tcvae import kl_decomposition, log_aggregate_posterior
from autoencoders.models.factor_vae import permute_dims
from autoencoders.training.module import make_optimizer


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return torch.tensor(load_digits().images[:64] / 16.0, dtype=torch.float32).unsqueeze(1)


def make(name: str, **overrides):
    cls = MODELS[name]
    settings = dict(input_shape=(1, 8, 8), latent_dim=4, recon_loss="bce", hidden=(64,))
    if name == "beta-tcvae":
        settings["dataset_size"] = 1000
    if name == "factor-vae":
        settings["discriminator_hidden"] = (64, 64)
    settings.update(overrides)
    torch.manual_seed(0)
    return cls(cls.config_class(**settings))


# -- the total-correlation estimators ----------------------------------------------------------------------
def normal_density(value: float, mean: float, log_var: float) -> float:
    return math.exp(-0.5 * (value - mean) ** 2 / math.exp(log_var)) / math.sqrt(2 * math.pi * math.exp(log_var))


def brute_force_log_densities(z, mean, log_var, dataset_size: int, estimator: str) -> tuple[list[float], list[float]]:
    """log q(z_i) and Σ_j log q(z_ij) from the estimators' definitions, one product and sum at a time."""
    batch, dims = z.shape
    joint, product = [], []
    for i in range(batch):
        def weight(k: int) -> float:
            if estimator == "mws":
                return 1 / (dataset_size * batch)
            return 1 / dataset_size if k == i else (dataset_size - 1) / (dataset_size * (batch - 1))

        joint.append(math.log(sum(
            weight(k) * math.prod(normal_density(z[i, d], mean[k, d], log_var[k, d]) for d in range(dims))
            for k in range(batch)
        )))
        product.append(sum(
            math.log(sum(weight(k) * normal_density(z[i, d], mean[k, d], log_var[k, d]) for k in range(batch)))
            for d in range(dims)
        ))
    return joint, product


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_tc_estimator_matches_brute_force(estimator):
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    log_var = 0.5 * torch.randn(6, 3, generator=generator, dtype=torch.float64) - 1.0
    z = mean + torch.exp(0.5 * log_var) * torch.randn(6, 3, generator=generator, dtype=torch.float64)
    log_qz, log_product = log_aggregate_posterior(z, mean, log_var, dataset_size=100, estimator=estimator)
    joint, product = brute_force_log_densities(z.numpy(), mean.numpy(), log_var.numpy(), 100, estimator)
    np.testing.assert_allclose(log_qz.numpy(), joint, rtol=1e-10)
    np.testing.assert_allclose(log_product.numpy(), product, rtol=1e-10)
    terms = kl_decomposition(z, mean, log_var, dataset_size=100, estimator=estimator)
    tc = np.mean(np.array(joint) - np.array(product))
    assert float(terms["tc"]) == pytest.approx(tc, rel=1e-10)
    # whatever the estimator, the three terms add up to the sampled KL, log q(z|x) - log p(z)
    sampled_kl = (
        -0.5 * ((z - mean).square() / log_var.exp() + log_var).sum(1) + 0.5 * z.square().sum(1)
    ).mean()
    assert float(terms["mi"] + terms["tc"] + terms["dim_kl"]) == pytest.approx(float(sampled_kl), rel=1e-10)


def test_stratified_estimate_is_exact_on_the_whole_dataset_and_unbiased_on_batches():
    generator = torch.Generator().manual_seed(1)
    size = 6
    mean = torch.randn(size, 2, generator=generator, dtype=torch.float64)
    log_var = 0.3 * torch.randn(size, 2, generator=generator, dtype=torch.float64) - 0.5
    z = mean + torch.exp(0.5 * log_var) * torch.randn(size, 2, generator=generator, dtype=torch.float64)
    densities = torch.exp(-0.5 * ((z[:, None] - mean[None]).square() / log_var.exp() + log_var + math.log(2 * math.pi)))
    exact_qz = densities.prod(2).mean(1)  # q(z_i) = (1/N) Σ_n q(z_i|n)
    # the batch is the whole dataset: the estimate is the exact aggregate posterior
    log_qz, _ = log_aggregate_posterior(z, mean, log_var, dataset_size=size, estimator="mss")
    np.testing.assert_allclose(log_qz.exp().numpy(), exact_qz.numpy(), rtol=1e-10)
    # batches of 3 holding item 0 and two of the other five: the mean of the estimates of q(z_0) is exact
    estimates = []
    for others in itertools.combinations(range(1, size), 2):
        batch = [0, *others]
        log_qz, _ = log_aggregate_posterior(z[batch], mean[batch], log_var[batch], dataset_size=size, estimator="mss")
        estimates.append(float(log_qz[0].exp()))
    assert np.mean(estimates) == pytest.approx(float(exact_qz[0]), rel=1e-10)
    assert np.std(estimates) > 0  # the batches do differ


def test_tc_is_near_zero_for_independent_codes_and_large_for_dependent_ones():
    generator = torch.Generator().manual_seed(2)
    source = torch.randn(512, 1, generator=generator)
    dependent = source.repeat(1, 4) + 0.05 * torch.randn(512, 4, generator=generator)  # four copies of one value
    independent = torch.randn(512, 4, generator=generator)
    log_var = torch.full((512, 4), math.log(0.5**2))
    tc = {
        name: float(kl_decomposition(code, code, log_var, dataset_size=512)["tc"])
        for name, code in (("dependent", dependent), ("independent", independent))
    }
    assert tc["independent"] < 0.5 and tc["dependent"] > 2.0, tc


# -- the models --------------------------------------------------------------------------------------------
def test_permuted_codes_keep_each_dimension_and_break_the_pairs():
    z = torch.arange(200, dtype=torch.float32).view(100, 2)
    torch.manual_seed(0)
    permuted = permute_dims(z)
    for column in range(2):
        assert torch.equal(permuted[:, column].sort().values, z[:, column].sort().values)
    assert not torch.equal(permuted[:, 0].argsort(), permuted[:, 1].argsort())


def test_each_factor_vae_player_changes_only_its_own_parameters(digits, step_each_player):
    model = make("factor-vae")
    players = model.players()
    assert list(players) == ["autoencoder", "discriminator"]
    assert players["discriminator"].betas == (0.5, 0.9)
    changes = step_each_player(model, digits)
    assert all(name.startswith("discriminator.") for name in changes["discriminator"])


def test_factor_vae_discriminator_steps_several_times_per_batch(tmp_path):
    import autoencoders

    out = autoencoders.train(
        "factor-vae", "digits", tmp_path / "run", hidden=(16,), latent_dim=3, max_steps=4, progress=False,
        settings={"discriminator_steps": 3, "discriminator_hidden": (16,)},
    )
    assert json.loads((out / "config.json").read_text())["training"]["steps_done"] == 4  # batches, not updates
    optimizers = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["optimizer_states"]
    autoencoder_state, discriminator_state = (next(iter(state["state"].values())) for state in optimizers)
    assert int(autoencoder_state["step"]) == 4 and int(discriminator_state["step"]) == 12
    with pytest.raises(ValueError, match="discriminator_steps"):
        make("factor-vae", discriminator_steps=0)


def test_factor_vae_code_memory_keeps_the_last_batches_and_draws_from_them(digits):
    model = make("factor-vae", code_memory=2).train()
    batches = digits.split(16)
    for seen, batch in enumerate(batches[:3], start=1):
        state = {}
        model.loss(batch, state=state)
        codes = state["codes"]
        for _ in range(2):  # repeated updates on one batch remember it once
            joint, product = model._joint_and_product_codes(batch, state)
        assert len(model._memory) == min(seen, 2) and model._memory[-1] is codes
    pool = torch.cat(model._memory)  # the second and third batches' codes
    assert joint.shape == product.shape == codes.shape
    assert all((pool == row).all(dim=1).any() for row in joint)  # whole codes of the recent batches
    for column in range(pool.shape[1]):  # each dimension of the product draws from that dimension of the pool
        assert torch.isin(product[:, column], pool[:, column]).all()
    model.eval()
    state = {}
    model.loss(batches[3], state=state)
    model.discriminator_loss(batches[3], state=state)
    assert len(model._memory) == 2 and model._memory[-1] is codes  # validation batches are not remembered
    with pytest.raises(ValueError, match="code_memory"):
        make("factor-vae", code_memory=-1)


@pytest.mark.parametrize("name", ["factor-vae", "beta-tcvae"])
def test_a_tiny_training_run_decreases_the_loss(name, digits):
    model = make(name)
    players = model.players()
    optimizers = [make_optimizer(player.parameters(), 3e-3, player.betas, 0.0) for player in players.values()]

    def autoencoder_loss() -> float:
        model.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            value = players["autoencoder"].loss(digits, None)["loss"].item()
        model.train()
        return value

    before = autoencoder_loss()
    for step in range(80):
        for player, optimizer in zip(players.values(), optimizers):
            terms = player.loss(digits, None, step=step)
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
    after = autoencoder_loss()
    assert after < 0.8 * before, (before, after)


def test_beta_tcvae_takes_the_dataset_size_from_the_training_data_and_its_report_shows_traversals(tmp_path):
    import autoencoders

    out = autoencoders.train(
        "beta-tcvae", "digits", tmp_path / "run", hidden=(32,), latent_dim=3, max_steps=3, progress=False,
        settings={"estimator": "mws"},
    )
    config = json.loads((out / "config.json").read_text())["model"]["config"]
    assert config["dataset_size"] == len(load_dataset("digits").train)
    assert config["estimator"] == "mws"
    from autoencoders.report import write_report

    report = write_report(out).read_text()
    assert 'id="traversals"' in report and (out / "pictures" / "traversals.png").exists()
    with pytest.raises(ValueError, match="dataset_size"):
        make("beta-tcvae", dataset_size=0)
    with pytest.raises(ValueError, match="unknown estimator"):
        make("beta-tcvae", estimator="exact")
    with pytest.raises(ValueError, match="iwae_samples and free_bits do not apply"):
        make("factor-vae", iwae_samples=5)
    with pytest.raises(ValueError, match="discriminator_hidden takes a list of integers"):
        make("factor-vae", discriminator_hidden="32,32")


# -- the metrics -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def factors() -> torch.Tensor:
    return sample_factors(4000, torch.Generator().manual_seed(0))


def test_mig_is_near_one_for_copied_factors_and_near_zero_for_noise_or_duplicates(factors):
    copied = factors.double().numpy()
    # 20 bins hold all of shape and scale but merge 40 orientations and 32 positions pairwise: ~0.9 in all
    assert mutual_information_gap(copied, factors.numpy()) > 0.85
    noise = np.random.default_rng(0).normal(size=(len(factors), 10))
    assert mutual_information_gap(noise, factors.numpy()) < 0.02
    duplicated = np.concatenate([copied, copied], axis=1)  # two dimensions know each factor equally: no gap
    assert mutual_information_gap(duplicated, factors.numpy()) < 0.02


def test_factor_score_is_high_for_copied_factors_and_chance_for_noise():
    def sample(count: int, generator: torch.Generator) -> torch.Tensor:
        return sample_factors(count, generator)

    copied = factor_score_of(lambda f: f.double().numpy(), sample, train_votes=100, eval_votes=100)
    assert copied == 1.0
    rng = np.random.default_rng(0)
    noise = factor_score_of(lambda f: rng.normal(size=(len(f), 10)), sample, train_votes=200, eval_votes=200)
    chance = 1 / len(SPRITE_FACTOR_SIZES)
    assert abs(noise - chance) < 0.12, noise
    # a code of scaled copies of some factors and noise elsewhere: the argmin picks the right dimension
    scales = np.array([1.0, 10.0, 0.5, 3.0, 100.0])
    rescaled = factor_score_of(lambda f: f.double().numpy() * scales, sample, train_votes=100, eval_votes=100)
    assert rescaled == 1.0


def test_factor_score_prunes_on_the_standard_deviation_as_disentanglement_lib():
    index_std = np.sqrt((np.array(SPRITE_FACTOR_SIZES) ** 2 - 1) / 12)  # of a uniformly drawn factor index

    def copies_with_std(stds: list[float]):
        return lambda factors: factors.double().numpy() / index_std * np.array(stds)

    # x's and y's copies at std 0.1 (variance 0.01) are kept: each is the least varying dimension when its factor
    # is fixed, so every vote is right (pruned on the variance, their votes went to other factors': about 3/5)
    assert factor_score_of(copies_with_std([1, 1, 1, 0.1, 0.1]), sample_factors, train_votes=100, eval_votes=100) == 1.0
    # std 0.04 is below the threshold: every dimension is pruned, and a code of none scores 0
    assert factor_score_of(copies_with_std([0.04] * 5), sample_factors, train_votes=100, eval_votes=100) == 0.0


def test_metrics_through_evaluate_and_clear_errors():
    sprites = load_dataset("sprites", limit=300)
    model = make("vae", input_shape=(1, 64, 64), latent_dim=4, hidden=(32,))
    results = evaluate_model(model, sprites, metrics=["mig", "factor-score"])
    assert 0.0 <= results["mig"] <= 1.0 and 0.0 <= results["factor-score"] <= 1.0
    digits_data = load_dataset("digits")
    with pytest.raises(ValueError, match="known generating factors"):
        mig(make("vae"), digits_data)
    with pytest.raises(ValueError, match="known generating factors"):
        evaluate_model(make("vae"), digits_data, metrics=["factor-score"])


# -- traversals --------------------------------------------------------------------------------------------
def test_traversals_sweep_one_dimension_per_row_in_order_of_kl(digits):
    model = make("vae", latent_dim=3)
    with torch.no_grad():  # make dimension 1 carry far more KL than the others
        head = model.encoder[-1]
        head.bias[1] += 3.0
    frames, dims, kl = latent_traversals(model, digits[0], digits, steps=5)
    assert frames.shape == (3, 5, 1, 8, 8)
    assert dims[0] == 1 and sorted(dims) == [0, 1, 2]
    assert kl == sorted(kl, reverse=True)
    code = model.encode(digits[:1])[0]
    expected = code.repeat(5, 1)
    expected[:, dims[0]] = torch.linspace(-2.5, 2.5, 5)
    torch.testing.assert_close(frames[0], model.decode(expected))
    picture = plots.latent_traversal_grid(frames, dims, kl)
    assert picture.width > 5 * 64 and picture.height >= 3 * 64
