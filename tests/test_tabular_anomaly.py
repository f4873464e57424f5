"""The default tabular detector (issue 39): a feature-bagged autoencoder (``bagged-ae``) scored by isolation forests
over its members' codes and residuals (``isolation``). Small synthetic tables where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import IsolationForest

from autoencoders.models import MODELS
from autoencoders.uses.anomaly import AnomalyDetector, auroc
from autoencoders.uses.isolation import IsolationForestArrays, IsolationScore

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def correlated_table(rows: int, seed: int) -> np.ndarray:
    """8 columns driven by 2 hidden factors plus a little noise: normal rows lie near a plane."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(100).normal(size=(2, 8))
    return rng.normal(size=(rows, 2)) @ mixing + 0.1 * rng.normal(size=(rows, 8))


def planted_outliers(rows: int, seed: int) -> np.ndarray:
    """Half off the plane (columns that disagree with the factors), half extreme in one column."""
    rng = np.random.default_rng(seed)
    off_plane = rng.normal(size=(rows // 2, 8)) * 1.5
    extreme = correlated_table(rows - rows // 2, seed + 1)
    extreme[np.arange(len(extreme)), rng.integers(0, 8, len(extreme))] += rng.choice([-6.0, 6.0], len(extreme))
    return np.r_[off_plane, extreme]


def test_tree_arrays_give_scikit_learns_scores_and_refuse_inconsistent_trees():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 5))
    X[:10] += 5
    forest = IsolationForest(n_estimators=30, max_samples=128, random_state=2).fit(X)
    arrays = IsolationForestArrays.fit(X, trees=30, max_samples=128, seed=2)
    np.testing.assert_allclose(arrays.score(X), -forest.score_samples(X), rtol=0, atol=1e-12)
    assert arrays.score(X)[:10].mean() > arrays.score(X)[10:].mean() + 0.1  # the shifted rows isolate sooner
    parts = arrays.arrays()
    looping = dict(parts, left=np.where(parts["left"] >= 0, 0, -1))  # children pointing back at the root
    with pytest.raises(ValueError, match="children must follow their parents"):
        IsolationForestArrays(**looping)
    with pytest.raises(ValueError, match="splits 5 numbers per item; got 3"):
        arrays.score(X[:, :3])


def test_isolation_score_standardizes_each_members_forest_and_restores_from_its_state():
    cls = MODELS["bagged-ae"]
    model = cls(cls.config_class(input_shape=(6,), members=3)).eval()
    items = torch.from_numpy(correlated_table(400, 0)[:, :6]).float()
    score = IsolationScore(batch=128, device="cpu", seed=0).fit(model, items)
    assert len(score.forests_) == 3  # one forest per member's view
    fitted = score.score(model, items, fitted=True)
    assert abs(fitted.mean()) < 1e-9  # each forest's score is standardized on the fitted items, then averaged
    new = items[:50] * 3
    values, arrays = score.state()
    again = IsolationScore(batch=128, device="cpu", seed=0)
    again.restore(model, values, arrays)
    np.testing.assert_array_equal(again.score(model, new), score.score(model, new))
    single = MODELS["ae"](MODELS["ae"].config_class(input_shape=(6,), latent_dim=2, hidden=(8,))).eval()
    with pytest.raises(ValueError, match="fitted on 3 views"):
        score.score(single, items)


def test_bagged_members_see_only_their_own_features_and_cover_them_all():
    cls = MODELS["bagged-ae"]
    model = cls(cls.config_class(input_shape=(10,), members=5, feature_fraction=0.4)).eval()
    assert model.config.latent_dim == 2 and model.config.hidden == (10,)  # a quarter of 10 (at least 2); width 10
    subsets = model.subsets
    assert subsets.shape == (5, 4) and set(subsets.flatten().tolist()) == set(range(10))  # every column is seen
    x = torch.randn(6, 10)
    codes = model.member_codes(x)
    unseen = [column for column in range(10) if column not in subsets[0].tolist()]
    changed = x.clone()
    changed[:, unseen] += 100.0
    after = model.member_codes(changed)
    assert torch.equal(after[0], codes[0])  # member 0 never looks at the columns it was not given
    assert not torch.equal(after, codes)
    assert model.encode(x).shape == (6, 10) and model.reconstruct(x).shape == (6, 10)
    assert model.anomaly_views(x).shape == (5, 6, 2 + 4)  # per member: its code beside its residual


def test_default_detector_ranks_outliers_it_was_fitted_among():
    """The default keeps its ranking when a tenth of the fitted rows are outliers (unsupervised, as in PyOD)."""
    fit_rows = np.r_[correlated_table(900, 0), planted_outliers(100, 1)]
    test_rows = np.r_[correlated_table(300, 2), planted_outliers(60, 3)]
    is_outlier = np.r_[np.zeros(300), np.ones(60)]
    detector = AnomalyDetector(contamination=0.1).fit(fit_rows)
    assert detector.model_.name == "bagged-ae" and detector.scores == "isolation"
    ours = auroc(detector.anomaly_score(test_rows), is_outlier)
    # off-plane rows hide from axis-aligned cuts of the raw columns, not from cuts of codes and residuals
    raw_columns = auroc(-IsolationForest(random_state=0).fit(fit_rows).score_samples(test_rows), is_outlier)
    assert ours > 0.88 and ours > raw_columns + 0.03, (ours, raw_columns)
    flagged = detector.predict(fit_rows) == -1
    assert flagged[900:].mean() > 5 * flagged[:900].mean()  # the threshold catches planted rows far more often


def test_rapp_needs_one_encoder_item_by_item():
    with pytest.raises(ValueError, match="score 'rapp' compares the hidden layers of one encoder"):
        AnomalyDetector(scores="rapp", max_steps=2).fit(correlated_table(50, 0))
