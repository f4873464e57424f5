"""Anomaly detection: the AUROC, the detector's scores and thresholds, the detect command and its errors.

Small data throughout: scikit-learn's 8x8 digits, one class as the normal data, tiny networks.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import autoencoders
from autoencoders.cli import app
from autoencoders.models.base import ModelConfig
from autoencoders.uses.anomaly import AnomalyDetector, AnomalyEnsemble, auroc
from autoencoders.uses.rotation import RotationPredictor, quarter_turns

TINY = {"latent_dim": 4, "hidden": (32,), "max_steps": 150, "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits(return_X_y=True)
    return (images / 16).reshape(-1, 1, 8, 8).astype(np.float32), labels


@pytest.fixture(scope="module")
def zeros_detector(digits, tmp_path_factory):
    """A plain AE trained on the zeros only, saved for the detect command."""
    images, labels = digits
    out = tmp_path_factory.mktemp("anomaly") / "zeros-ae"
    detector = AnomalyDetector("ae", scores="recon", contamination=0.1, settings={"recon_loss": "mse"}, out=out, **TINY)
    return detector.fit(images[labels == 0]), out


# -- AUROC ---------------------------------------------------------------------------------------------------
def test_auroc_of_perfect_reversed_and_random_scorers():
    labels = np.r_[np.zeros(500), np.ones(300)]
    perfect = labels + np.random.default_rng(0).uniform(0, 0.5, labels.size)
    assert auroc(perfect, labels) == 1.0
    assert auroc(-perfect, labels) == 0.0
    random_scores = np.random.default_rng(1).normal(size=labels.size)
    assert abs(auroc(random_scores, labels) - 0.5) < 0.05
    assert auroc(np.zeros(labels.size), labels) == 0.5  # all tied: no better than chance
    assert auroc(random_scores, labels) == pytest.approx(roc_auc_score(labels, random_scores), abs=1e-12)


def test_auroc_refuses_one_class_labels_and_mismatched_lengths():
    with pytest.raises(ValueError, match="both anomalies and normal"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="one label per score"):
        auroc([0.1, 0.2, 0.3], [0, 1])


# -- the detector --------------------------------------------------------------------------------------------
def test_detector_separates_other_digits_from_the_class_it_was_fitted_on(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    assert auroc(detector.anomaly_score(images), labels != 0) > 0.95
    latent = AnomalyDetector(detector.model_, scores="latent").fit(images[labels == 0])
    assert auroc(latent.anomaly_score(images), labels != 0) > 0.9
    both = AnomalyDetector(detector.model_, scores="recon+latent", latent_distance="mahalanobis").fit(images[labels == 0])
    assert auroc(both.anomaly_score(images), labels != 0) > 0.95
    parts = both.part_scores(images)
    assert set(parts) == {"recon", "latent"}
    np.testing.assert_allclose(both.combine(parts), both.anomaly_score(images))
    pooled = AnomalyDetector(detector.model_, scores="recon", pool=2).fit(images[labels == 0]).anomaly_score(images)
    assert auroc(pooled, labels != 0) > 0.9 and not np.allclose(pooled, detector.anomaly_score(images))


def test_rapp_whitens_the_fitted_differences_and_separates_other_digits(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    rapp = AnomalyDetector(detector.model_, scores="rapp").fit(images[labels == 0])
    # on the fitted items, each kept direction's whitened projection has mean square 1 (all of them kept here:
    # the exact decomposition), so the scores average their number
    assert rapp.fit_anomaly_scores_.mean() == pytest.approx(rapp.scorers_["rapp"].directions_.shape[1], rel=1e-6)
    assert rapp.scorers_["rapp"].directions_.shape[0] == rapp.scorers_["rapp"].mean_.shape[0] > detector.model_.config.latent_dim
    assert auroc(rapp.anomaly_score(images), labels != 0) > 0.95
    few = AnomalyDetector(detector.model_, scores="rapp", components=3).fit(images[labels == 0])
    assert few.scorers_["rapp"].directions_.shape[1] == 3 and few.fit_anomaly_scores_.mean() == pytest.approx(3, rel=0.02)


def test_latent_distances_whitened_cosine_and_their_sum(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    normal, model = images[labels == 0], detector.model_

    def fitted(distance):
        return AnomalyDetector(model, scores="latent", latent_distance=distance, neighbors=3).fit(normal)

    with torch.no_grad():
        codes, test_codes = (model.encode(torch.from_numpy(x)).double().numpy() for x in (normal, images))
    # whitened: the fitted codes' view has the identity covariance, and its kNN distances are brute-force ones
    whitened = fitted("whitened")
    view = whitened.scorers_["latent"]._view("whitened", codes)
    np.testing.assert_allclose(np.cov(view, rowvar=False, bias=True), np.eye(view.shape[1]), atol=1e-6)
    brute = np.sort(np.linalg.norm(whitened.scorers_["latent"]._view("whitened", test_codes)[:, None] - view[None], axis=2), axis=1)
    np.testing.assert_allclose(whitened.anomaly_score(images), brute[:, :3].mean(1), rtol=1e-6)
    # cosine: one minus the cosine similarity to the 3 most similar fitted codes, by brute force
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cosine = np.sort(1 - unit(test_codes) @ unit(codes).T, axis=1)[:, :3].mean(1)
    np.testing.assert_allclose(fitted("cosine").anomaly_score(images), cosine, rtol=1e-6, atol=1e-12)
    # a sum: each distance standardized by its scores on the fitted items (each left out of its neighbours)
    singles = [fitted(distance) for distance in ("knn", "whitened", "cosine")]
    expected = sum((one.anomaly_score(images) - one.fit_anomaly_scores_.mean()) / one.fit_anomaly_scores_.std() for one in singles)
    combined = fitted("knn+whitened+cosine")
    np.testing.assert_allclose(combined.anomaly_score(images), expected, rtol=1e-6)
    assert auroc(combined.anomaly_score(images), labels != 0) > 0.9
    with pytest.raises(ValueError, match="needs more than neighbors=5 fitted items; got n_samples=5"):
        AnomalyDetector(model, scores="latent", latent_distance="mahalanobis+cosine", neighbors=5).fit(normal[:5])
    for bad in ("knn+euclid", "knn+knn", "", None):
        with pytest.raises(ValueError, match="knn, whitened, cosine, mahalanobis"):
            AnomalyDetector(model, scores="latent", latent_distance=bad).fit(normal)


def test_contamination_flags_that_fraction_of_the_fitted_items(zeros_detector, digits):
    detector, _ = zeros_detector
    normal = digits[0][digits[1] == 0]
    flagged = (detector.predict(normal) == -1).mean()
    assert abs(flagged - 0.1) <= 1.5 / len(normal)
    latent = AnomalyDetector(detector.model_, scores="latent", contamination=0.2)
    assert abs((latent.fit_predict(normal) == -1).mean() - 0.2) <= 1.5 / len(normal)
    strict = AnomalyDetector(detector.model_, contamination=0.5).fit(normal)
    assert abs((strict.predict(normal) == -1).mean() - 0.5) <= 1.5 / len(normal)
    default = AnomalyDetector(detector.model_).fit(normal)  # "auto": 1% of the fitted items
    assert default.contamination == "auto" and default.threshold_ == pytest.approx(np.quantile(default.fit_anomaly_scores_, 0.99))


def test_predict_decision_function_and_threshold_agree(zeros_detector, digits):
    detector, _ = zeros_detector
    images = digits[0]
    normality = detector.score_samples(images)
    np.testing.assert_allclose(normality, -detector.anomaly_score(images))
    np.testing.assert_allclose(detector.decision_function(images), normality - detector.offset_)
    predicted = detector.predict(images)
    assert set(np.unique(predicted)) == {-1, 1}
    np.testing.assert_array_equal(predicted == -1, detector.anomaly_score(images) > detector.threshold_)
    # other input types and layouts give the same scores: torch tensors, flat rows, 0..255 bytes
    np.testing.assert_allclose(detector.score_samples(torch.from_numpy(images)), normality, rtol=1e-5)
    np.testing.assert_allclose(detector.score_samples(images.reshape(len(images), -1)), normality, rtol=1e-5)


def test_elbo_score_of_a_vae_and_its_importance_sampled_bound(digits):
    images, labels = digits
    detector = AnomalyDetector("vae", scores="elbo", **TINY).fit(images[labels == 0])
    elbo = detector.anomaly_score(images)
    assert auroc(elbo, labels != 0) > 0.9
    np.testing.assert_array_equal(elbo, detector.anomaly_score(images))  # seeded: the same every call
    bound = AnomalyDetector(detector.model_, scores="elbo", samples=20).fit(images[labels == 0]).anomaly_score(images)
    assert np.mean(bound) < np.mean(elbo)  # -log p(x) estimate is tighter than the negative ELBO


def test_tables_are_standardized_for_a_model_trained_here():
    rng = np.random.default_rng(0)
    normal = rng.normal([100.0, -5.0, 0.0], [10.0, 0.1, 1.0], size=(300, 3))
    odd = normal[:20] + [0.0, 1.0, 0.0]  # 10 standard deviations off in the small-scale column only
    detector = AnomalyDetector("ae", scores="recon", latent_dim=1, hidden=(16,), max_steps=150).fit(normal)
    assert detector.standardization_["mean"][0] == pytest.approx(normal[:, 0].mean())
    scores = detector.anomaly_score(np.r_[normal[20:60], odd])
    assert auroc(scores, np.r_[np.zeros(40), np.ones(20)]) > 0.95


# -- the ensemble --------------------------------------------------------------------------------------------
def test_ensemble_sums_its_members_standardized_scores(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    normal = images[labels == 0]
    members = [AnomalyDetector(detector.model_, scores="recon"), AnomalyDetector(detector.model_, scores="latent")]
    ensemble = AnomalyEnsemble(members, contamination=0.1).fit(normal)
    assert not any(hasattr(member, "offset_") for member in members)  # fitted as copies
    expected = 0
    for score in ("recon", "latent"):
        alone = AnomalyDetector(detector.model_, scores=score).fit(normal)
        fitted = alone.fit_anomaly_scores_
        expected = expected + (alone.anomaly_score(images) - fitted.mean()) / fitted.std()
    np.testing.assert_allclose(ensemble.anomaly_score(images), expected, rtol=1e-9)
    # single-part members of one model standardize exactly as one detector's parts do
    both = AnomalyDetector(detector.model_, scores="recon+latent").fit(normal)
    np.testing.assert_allclose(ensemble.anomaly_score(images), both.anomaly_score(images), rtol=1e-9)
    np.testing.assert_allclose(ensemble.combine(ensemble.member_scores(images)), ensemble.anomaly_score(images))
    assert auroc(ensemble.anomaly_score(images), labels != 0) > 0.95
    assert abs((ensemble.fit_predict(normal) == -1).mean() - 0.1) <= 1.5 / len(normal)
    np.testing.assert_array_equal(ensemble.predict(images) == -1, ensemble.anomaly_score(images) > ensemble.threshold_)


def test_ensemble_trains_members_of_different_networks(digits):
    images, labels = digits
    ensemble = AnomalyEnsemble([
        AnomalyDetector("ae", scores="rapp", **TINY),
        AnomalyDetector("ae", scores="latent", **{**TINY, "arch": "conv", "hidden": (8, 16)}),
    ]).fit(images[labels == 0])
    assert [member.model_.config.arch for member in ensemble.detectors_] == ["mlp", "conv"]
    assert ensemble.n_features_in_ == 64
    assert auroc(ensemble.anomaly_score(images), labels != 0) > 0.95


def test_ensemble_errors_are_clear(zeros_detector, digits):
    detector, _ = zeros_detector
    images = digits[0]
    with pytest.raises(ValueError, match="list of one or more AnomalyDetector"):
        AnomalyEnsemble([]).fit(images)
    with pytest.raises(ValueError, match="list of one or more AnomalyDetector"):
        AnomalyEnsemble([detector.model_]).fit(images)
    with pytest.raises(ValueError, match="contamination"):
        AnomalyEnsemble([AnomalyDetector(detector.model_)], contamination=0.9).fit(images)
    with pytest.raises(ValueError, match="AnomalyEnsemble is not fitted yet"):
        AnomalyEnsemble([AnomalyDetector(detector.model_)]).predict(images)


# -- errors --------------------------------------------------------------------------------------------------
def test_bad_settings_and_inputs_are_clear_errors(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    with pytest.raises(ValueError, match="recon, elbo, latent, rapp, rotation"):
        AnomalyDetector(detector.model_, scores="reconstruction").fit(images)
    with pytest.raises(ValueError, match="contamination"):
        AnomalyDetector(detector.model_, contamination=0.9).fit(images)
    with pytest.raises(ValueError, match="needs a model with a likelihood"):
        AnomalyDetector(detector.model_, scores="elbo").fit(images)
    with pytest.raises(ValueError, match="needs a model with a likelihood"):
        AnomalyDetector("ae", scores="elbo").fit(images)  # refused before any training
    with pytest.raises(ValueError, match="neither a model family"):
        AnomalyDetector("no-such-model").fit(images)
    with pytest.raises(ValueError, match="not fitted yet"):
        AnomalyDetector(detector.model_).predict(images)
    with pytest.raises(ValueError, match="X has 10 features, but AnomalyDetector is expecting 64 features"):
        detector.predict(np.zeros((3, 10), dtype=np.float32))
    with pytest.raises(ValueError, match=r"items of shape \(1, 8, 7\)"):
        detector.predict(np.zeros((3, 1, 8, 7), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        detector.predict(np.full((2, 64), np.nan))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        detector.predict(images[0, 0, 0])


def test_rotation_score_learns_the_turns_of_the_fitted_class_and_flags_other_digits(digits):
    images, labels = digits
    sevens = images[labels == 7]
    fit, held_out = sevens[:120], torch.from_numpy(sevens[120:])
    detector = AnomalyDetector("ae", scores="latent+rotation", arch="conv", hidden=(16, 32), latent_dim=8, max_steps=300).fit(fit)
    predictor = detector.scorers_["rotation"].predictor_
    assert predictor.config.arch == "conv" and predictor.config.hidden == (16, 32)  # the model's encoder architecture
    with torch.no_grad():  # held-out sevens: the turn each was given is read back
        turns = predictor(quarter_turns(held_out)).argmax(1)
    assert (turns == torch.arange(4).repeat_interleave(len(held_out))).float().mean() > 0.9
    parts = detector.part_scores(images)
    assert auroc(parts["rotation"], labels != 7) > 0.9
    # upside down, a held-out seven is the anomaly: the score is about orientation, which codes of upright items miss
    upside_down = torch.rot90(held_out, 2, dims=(2, 3)).numpy()
    rotation = detector.scorers_["rotation"].predictor_.scores(torch.from_numpy(np.concatenate([held_out.numpy(), upside_down])))
    assert auroc(rotation, np.r_[np.zeros(len(held_out)), np.ones(len(held_out))]) > 0.95
    (latent_mean, latent_std), (rotation_mean, rotation_std) = detector.score_scales_["latent"], detector.score_scales_["rotation"]
    expected = (parts["latent"] - latent_mean) / latent_std + (parts["rotation"] - rotation_mean) / rotation_std
    np.testing.assert_allclose(detector.anomaly_score(images), expected, rtol=1e-6)


def test_rotation_score_refuses_what_quarter_turns_would_reshape(digits):
    images, _ = digits
    with pytest.raises(ValueError, match=r"square images \(C, H, H\); got items of shape \(5,\)"):
        AnomalyDetector("ae", scores="rotation").fit(np.random.default_rng(0).random((50, 5)))  # before any training
    with pytest.raises(ValueError, match=r"got items of shape \(1, 8, 6\)"):
        AnomalyDetector("ae", scores="recon+rotation", arch="conv").fit(images[:40, :, :, :6])
    # a model whose code is a map: the predictor takes the conv encoder, whose code is a flat vector
    predictor = RotationPredictor(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, arch="spatial", hidden=(8,)))
    assert predictor.config.arch == "conv" and predictor(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


# -- the command ---------------------------------------------------------------------------------------------
def test_detect_keeps_table_row_ids_and_the_report_shows_the_scores(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(240, 4)) @ rng.normal(size=(4, 4))
    table = pd.DataFrame(rows, columns=list("abcd"))
    table.insert(0, "row_id", [f"r{index:03d}" for index in range(len(table))])
    table.to_csv(tmp_path / "train.csv", index=False)
    run = autoencoders.train(
        "ae", str(tmp_path / "train.csv"), tmp_path / "run", hidden=(16,), latent_dim=2, max_steps=60,
        progress=False, settings={"data.id_column": "row_id"},
    )
    new = table.iloc[:30].copy()
    new.loc[new.index[[3, 17]], "a"] = 50.0  # two rows far outside the training data
    new["row_id"] = [f"new{index}" for index in range(30)][::-1]
    new.to_csv(tmp_path / "new.csv", index=False)

    result = invoke("detect", run, "--data", tmp_path / "new.csv", "-o", tmp_path / "scores.csv", "--top", "0.05")
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output and "top 0.05 of the 30 scored items" in " ".join(result.output.split())
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["id", "anomaly_score", "outlier", "top_feature_1", "top_share_1", "top_feature_2",
                                    "top_share_2", "top_feature_3", "top_share_3"]
    assert scores["id"].tolist() == new["row_id"].tolist()
    flagged = scores[scores["outlier"] == 1]
    assert set(flagged["id"]) == {new["row_id"].iloc[3], new["row_id"].iloc[17]}
    assert (flagged["top_feature_1"] == "a").all() and (flagged["top_share_1"] > 0.5).all()
    assert (scores["top_share_1"] >= scores["top_share_2"]).all() and (scores["top_share_2"] >= scores["top_share_3"]).all()
    summary = json.loads((run / "anomaly" / "summary.json").read_text())
    assert summary["threshold_from"] == "top 0.05 of the 30 scored items"
    # by default the threshold flags contamination 0.01 of the reference items: the run's training rows
    result = invoke("detect", run, "--data", tmp_path / "new.csv", "-o", tmp_path / "default.csv")
    default = json.loads((run / "anomaly" / "summary.json").read_text())
    assert result.exit_code == 0 and default["threshold_from"].startswith("contamination 0.01, the 0.99 quantile of the ")
    assert "reference items' anomaly scores" in default["threshold_from"]
    assert summary["flagged_features"][0]["feature"] == "a" and len(summary["flagged_features"]) == 4

    page = autoencoders.write_report(run).read_text()
    assert 'id="anomaly"' in page and new["row_id"].iloc[3] in page
    assert "mean share of the error" in page


def test_detect_names_images_by_file_with_a_reference_set(zeros_detector, digits, tmp_path):
    _, model_folder = zeros_detector
    images, labels = digits
    folder = tmp_path / "images"
    (folder / "more").mkdir(parents=True)
    picks = {"zero_a.png": 0, "zero_b.png": 10, "more/seven.png": int(np.flatnonzero(labels == 7)[0])}
    for name, index in picks.items():
        Image.fromarray((images[index, 0] * 255).round().astype(np.uint8)).save(folder / name)
    np.save(tmp_path / "reference.npy", images[labels == 0])
    result = invoke("detect", model_folder, "--data", folder, "--reference", tmp_path / "reference.npy",
                    "-o", tmp_path / "scores.csv")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(tmp_path / "scores.csv").set_index("id")["anomaly_score"]
    assert sorted(scores.index) == sorted(picks)
    assert scores["more/seven.png"] > max(scores["zero_a.png"], scores["zero_b.png"])
    result = invoke("detect", model_folder, "--data", folder, "--reference", tmp_path / "reference.npy",
                    "-o", tmp_path / "latent.csv", "--score", "latent", "--latent-distance", "knn+whitened+cosine")
    assert result.exit_code == 0, result.output
    latent = pd.read_csv(tmp_path / "latent.csv").set_index("id")["anomaly_score"]
    assert latent["more/seven.png"] > max(latent["zero_a.png"], latent["zero_b.png"])


def test_detect_errors_are_one_line_messages(zeros_detector, tmp_path):
    _, model_folder = zeros_detector
    result = invoke("detect", model_folder, "--data", tmp_path / "missing.csv", "-o", tmp_path / "s.csv",
                    "--reference", tmp_path / "missing.csv")
    assert result.exit_code == 2 and "does not exist" in result.output
    result = invoke("detect", model_folder, "--data", tmp_path, "-o", tmp_path / "scores.txt")
    assert result.exit_code == 2 and ".csv" in result.output
    np.save(tmp_path / "x.npy", np.zeros((4, 64), dtype=np.float32))
    result = invoke("detect", model_folder, "--data", tmp_path / "x.npy", "-o", tmp_path / "s.csv")
    assert result.exit_code == 2 and "--reference" in result.output
    np.save(tmp_path / "images.npy", np.random.default_rng(0).uniform(size=(12, 1, 8, 8)).astype(np.float32))
    result = invoke("detect", model_folder, "--data", tmp_path / "images.npy", "-o", tmp_path / "s.csv", "--score", "latent",
                    "--latent-distance", "knn+angle", "--reference", tmp_path / "images.npy")
    assert result.exit_code == 2 and "latent_distance must be one of" in result.output


# -- explain -------------------------------------------------------------------------------------------------
def test_explain_gives_the_shifted_column_the_largest_share_of_the_error():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(400, 2))
    normal = pd.DataFrame(latent @ rng.normal(size=(2, 5)) + 0.05 * rng.normal(size=(400, 5)), columns=list("abcde"))
    detector = AnomalyDetector(scores="recon+latent", latent_dim=2, hidden=(16,), max_steps=200, batch_size=32).fit(normal)
    odd = normal.iloc[:20].copy()
    odd["c"] += 8 * normal["c"].std()  # far from the normal range in one column only
    shares = detector.explain(odd)
    assert isinstance(shares, pd.DataFrame) and list(shares.columns) == list("abcde")
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    assert (shares.idxmax(axis=1) == "c").all()
    assert shares["c"].mean() > 0.5
    # a detector fitted on an array (no column names) gives an array
    plain = AnomalyDetector(latent_dim=2, hidden=(16,), max_steps=200, batch_size=32).fit(normal.to_numpy())
    array = plain.explain(odd.to_numpy())
    assert isinstance(array, np.ndarray) and array.shape == (20, 5) and (array.argmax(1) == 2).all()


def test_explain_maps_an_image_error_to_its_pixels(zeros_detector, digits):
    detector, _ = zeros_detector
    images, labels = digits
    zeros = images[labels == 0][:10].copy()
    zeros[:, 0, 0, 7] = 1.0  # a bright corner pixel, dark in every zero
    maps = detector.explain(zeros)
    assert maps.shape == (10, 1, 8, 8)
    np.testing.assert_allclose(maps.reshape(10, -1).sum(1), 1.0, rtol=1e-9)
    assert (maps.reshape(10, -1).argmax(1) == 7).mean() >= 0.8


# -- detect with a saved detector ----------------------------------------------------------------------------
def test_detect_scores_with_a_saved_detector_its_scaling_and_threshold(tmp_path):
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 2))
    train = pd.DataFrame(latent @ rng.normal(size=(2, 4)) * [1.0, 10.0, 100.0, 0.1] + [0, 50, -200, 3], columns=list("wxyz"))
    detector = AnomalyDetector(contamination=0.05, latent_dim=2, hidden=(16,), max_steps=200, batch_size=32).fit(train)
    folder = detector.save_pretrained(tmp_path / "my-detector")
    rows = train.iloc[:40].copy()
    rows.loc[rows.index[[5, 9]], "y"] += 20 * train["y"].std()  # raw units: the detector scales them itself
    rows.insert(0, "key", [f"k{index}" for index in range(40)])
    rows.to_csv(tmp_path / "rows.csv", index=False)

    out = tmp_path / "out" / "scores.csv"
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "--id-column", "key", "-o", out)
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "contamination 0.05, the 0.95 quantile of the 300 fitted items' anomaly scores" in printed
    scores = pd.read_csv(out)
    expected = detector.anomaly_score(rows[list("wxyz")])
    np.testing.assert_allclose(scores["anomaly_score"], expected, rtol=1e-6)
    np.testing.assert_array_equal(scores["outlier"], (detector.predict(rows[list("wxyz")]) == -1).astype(int))
    assert {"k5", "k9"} <= set(scores.loc[scores["outlier"] == 1, "id"])
    assert scores.set_index("id").loc[["k5", "k9"], "top_feature_1"].tolist() == ["y", "y"]
    summary = json.loads((tmp_path / "out" / "scores.summary.json").read_text())  # beside the scores
    assert summary["threshold"] == pytest.approx(detector.threshold_) and "contamination 0.05" in summary["threshold_from"]
    assert summary["flagged_features"][0]["feature"] == "y" and summary["detector"] == str(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "detector.safetensors", "model.safetensors"]

    # an explicit threshold replaces the saved one; options that fit a new detector are refused
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "--id-column", "key", "-o", out, "--threshold", "1e9")
    assert result.exit_code == 0 and pd.read_csv(out)["outlier"].sum() == 0
    assert json.loads((tmp_path / "out" / "scores.summary.json").read_text())["threshold_from"] == "given"
    # a contamination is of the fitted items, whose scores the detector keeps: the threshold is their quantile
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "--id-column", "key", "-o", out, "--contamination", "0.2")
    summary = json.loads((tmp_path / "out" / "scores.summary.json").read_text())
    assert result.exit_code == 0 and summary["threshold"] == pytest.approx(np.quantile(detector.fit_anomaly_scores_, 0.8))
    assert summary["threshold_from"] == "contamination 0.2, the 0.8 quantile of the 300 fitted items' anomaly scores"
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "-o", out, "--top", "0.1", "--contamination", "0.1")
    assert result.exit_code == 2 and "not several" in result.output
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "-o", out, "--contamination", "0.7")
    assert result.exit_code == 2 and "share of outliers expected among the fitted items" in result.output
    result = invoke("detect", folder, "--data", tmp_path / "rows.csv", "-o", out, "--score", "latent", "--reference", tmp_path / "rows.csv")
    assert result.exit_code == 2 and "holds a saved AnomalyDetector" in result.output and "score, reference" in result.output
    rows.drop(columns="y").to_csv(tmp_path / "lacking.csv", index=False)
    result = invoke("detect", folder, "--data", tmp_path / "lacking.csv", "--id-column", "key", "-o", out)
    assert result.exit_code == 2 and "lacks the model's column(s) y" in result.output


def test_detect_with_a_saved_detector_of_unnamed_columns_and_a_saved_ensemble(tmp_path):
    X = np.random.default_rng(0).normal(size=(200, 3))
    detector = AnomalyDetector(**TINY).fit(X)
    ensemble = AnomalyEnsemble([AnomalyDetector(**TINY), AnomalyDetector(scores="latent", **TINY)]).fit(X)
    pd.DataFrame(X[:20], columns=["p", "q", "r"]).assign(row=range(20)).to_csv(tmp_path / "rows.csv", index=False)
    result = invoke("detect", detector.save_pretrained(tmp_path / "plain"), "--data", tmp_path / "rows.csv", "-o", tmp_path / "s.csv")
    assert result.exit_code == 2 and "name the id column with --id-column" in result.output
    result = invoke("detect", tmp_path / "plain", "--data", tmp_path / "rows.csv", "--id-column", "row", "-o", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(tmp_path / "s.csv")
    np.testing.assert_allclose(scores["anomaly_score"], detector.anomaly_score(X[:20]), rtol=1e-6)
    assert set(scores["top_feature_1"]) <= {"p", "q", "r"}
    result = invoke("detect", ensemble.save_pretrained(tmp_path / "ensemble"), "--data", tmp_path / "rows.csv",
                    "--id-column", "row", "-o", tmp_path / "e.csv")
    assert result.exit_code == 0, result.output
    by_ensemble = pd.read_csv(tmp_path / "e.csv")
    np.testing.assert_allclose(by_ensemble["anomaly_score"], ensemble.anomaly_score(X[:20]), rtol=1e-6)
    shares = ensemble.explain(X[:20])  # the members' shares, averaged
    np.testing.assert_allclose(shares, (ensemble.detectors_[0].explain(X[:20]) + ensemble.detectors_[1].explain(X[:20])) / 2)
    np.testing.assert_allclose(shares.sum(1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(by_ensemble["top_share_1"], shares.max(1).round(4), atol=1e-4)
