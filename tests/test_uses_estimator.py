"""AutoencoderTransformer: scikit-learn's estimator checks, a Pipeline inside GridSearchCV, saving and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import autoencoders
from autoencoders.uses.estimator import AutoencoderTransformer


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0)[:400], data.target[:400]


@parametrize_with_checks([AutoencoderTransformer(latent_dim=2, hidden=(8,), max_steps=2, batch_size=16)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_top_level_export():
    assert autoencoders.AutoencoderTransformer is AutoencoderTransformer


def test_training_lowers_the_reconstruction_error(digits):
    X, _ = digits
    short = AutoencoderTransformer("ae", latent_dim=8, max_steps=1, random_state=0).fit(X)
    longer = AutoencoderTransformer("ae", latent_dim=8, max_steps=150, batch_size=32, random_state=0).fit(X)
    assert longer.score(X) > 0.5 * short.score(X)  # scores are negative MSEs: at least halved
    codes = longer.transform(X)
    assert codes.shape == (len(X), 8) and codes.dtype == np.float64
    assert longer.inverse_transform(codes).shape == X.shape


def test_fit_is_reproducible_and_leaves_the_global_generator_alone(digits):
    X, _ = digits
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = AutoencoderTransformer("vae", latent_dim=3, max_steps=20, random_state=7).fit_transform(X[:100])
    after = torch.rand(1)
    second = AutoencoderTransformer("vae", latent_dim=3, max_steps=20, random_state=7).fit_transform(X[:100])
    assert torch.equal(before, after)
    np.testing.assert_array_equal(first, second)


def test_pipeline_in_grid_search(digits):
    X, y = digits
    pipeline = Pipeline([
        ("scale", StandardScaler()),
        ("autoencoder", AutoencoderTransformer("ae", max_steps=60, hidden=(64,), batch_size=32, random_state=0)),
        ("classify", LogisticRegression(max_iter=500)),
    ])
    search = GridSearchCV(pipeline, {"autoencoder__latent_dim": [2, 16]}, cv=2)
    search.fit(X, y)
    assert search.best_params_ == {"autoencoder__latent_dim": 16}  # 2 numbers cannot hold 10 digit classes
    assert search.score(X, y) > 0.8
    assert search.predict(X[:5]).shape == (5,)


def test_grid_search_without_scoring_uses_the_reconstruction_score(digits):
    X, _ = digits
    search = GridSearchCV(
        AutoencoderTransformer("ae", max_steps=60, hidden=(64,), batch_size=32, random_state=0), {"latent_dim": [1, 12]}, cv=2
    )
    search.fit(X)
    assert search.best_params_ == {"latent_dim": 12}


def test_images_through_a_conv_network(digits):
    X, _ = digits
    estimator = AutoencoderTransformer("dae", latent_dim=4, arch="conv", hidden=(4,), input_shape=(1, 8, 8),
                                       recon_loss="bce", settings={"noise_level": 0.2}, max_steps=5, random_state=0)
    codes = estimator.fit_transform(X.astype(np.float32))
    assert codes.shape == (len(X), 4) and codes.dtype == np.float32
    assert estimator.model_.config.noise_level == 0.2 and estimator.model_.config.arch == "conv"


def test_save_and_load_give_the_same_codes(digits, tmp_path):
    import pandas as pd

    X, _ = digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    estimator = AutoencoderTransformer("beta-vae", latent_dim=3, settings={"beta": 2.0}, max_steps=10, random_state=0).fit(frame)
    estimator.save_pretrained(tmp_path / "saved")
    loaded = AutoencoderTransformer.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.transform(frame), estimator.transform(frame))
    assert loaded.get_params()["settings"] == {"beta": 2.0} and loaded.get_params()["model"] == "beta-vae"
    assert list(loaded.feature_names_in_) == list(frame.columns)
    assert autoencoders.load(tmp_path / "saved").name == "beta-vae"  # an ordinary saved model too


def test_wraps_a_run_folder(tmp_path):
    run = autoencoders.train("vae", "digits", tmp_path / "run", latent_dim=3, max_steps=5, progress=False)
    estimator = AutoencoderTransformer.from_pretrained(run)
    assert estimator.n_features_in_ == 64 and estimator.get_params()["input_shape"] == (1, 8, 8)
    X = load_digits().data[:10] / 16.0
    assert estimator.transform(X).shape == (10, 3)


def test_bad_settings_are_refused_clearly(digits):
    X, y = digits
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        AutoencoderTransformer("nope").fit(X)
    with pytest.raises(ValueError, match="input_shape"):
        AutoencoderTransformer(input_shape=(1, 5, 5)).fit(X)
    with pytest.raises(ValueError, match="needs values in \\[0, 1\\]"):
        AutoencoderTransformer(recon_loss="bce").fit(X * 3 - 1)
    with pytest.raises(ValueError, match="class labels"):
        AutoencoderTransformer("cvae", settings={"num_classes": 10}, max_steps=1).fit(X, y)
    with pytest.raises(ValueError, match="unknown setting"):
        AutoencoderTransformer(settings={"bogus": 1}, max_steps=1).fit(X)
    with pytest.raises(ValueError, match="setting beta takes a number"):
        AutoencoderTransformer("vae", settings={"beta": "4e-4"}, max_steps=1).fit(X)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        AutoencoderTransformer(lr="4e-4", max_steps=1).fit(X)
