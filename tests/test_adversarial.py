"""Adversarial models (AAE family, ACAI), the lines benchmark metrics and the representation metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from autoencoders.corruption import random_rotate_scale, random_shift
from autoencoders.data.batches import SemiSupervisedBatches
from autoencoders.data.registry import Dataset
from autoencoders.data.splits import balanced_subset
from autoencoders.data.synthetic import render_lines
from autoencoders.metrics.lines import score_interpolations, smoothness
from autoencoders.metrics.representation import cluster_stability, matched_accuracy
from autoencoders.models import MODELS
from autoencoders.models.aae import r1_penalty, sample_prior
from autoencoders.models.categorical_aae import category_imbalance, consistency_divergence
from autoencoders.training.module import make_optimizer
from torch import Tensor


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    return torch.tensor(data.images[:64] / 16.0, dtype=torch.float32).unsqueeze(1), torch.tensor(data.target[:64])


def make(name: str, **overrides):
    cls = MODELS[name]
    settings = dict(input_shape=(1, 8, 8), latent_dim=4, recon_loss="bce", hidden=(32,))
    settings.update(overrides)
    torch.manual_seed(0)
    return cls(cls.config_class(**settings))


@pytest.mark.parametrize(
    "name, overrides",
    [("acai", {}), ("aae", {"prior": "mog"}), ("aae", {"supervised": True, "num_classes": 10}), ("aae-semi", {"labels": 20}), ("aae-cluster", {}),
     ("aae", {"discriminator_r1": 1.0}), ("aae-cluster", {"discriminator_r1": 1.0}), ("aae-cluster", {"category_balance": 1.0}),
     ("aae-cluster", {"consistency": 1.0, "consistency_shift": 1, "consistency_scale": 0.1})],
)
def test_each_player_changes_only_its_own_parameters(name, overrides, digits, step_each_player):
    x, y = digits
    if name == "aae-semi":  # semi-supervised batches: most labels hidden
        y = torch.where(torch.arange(64) < 40, torch.tensor(-1), y)
    model = make(name, **overrides)
    players = model.players()
    assert len(players) >= 2
    step_each_player(model, x, y)


def holds(value, tensor: Tensor) -> bool:
    """Whether ``value`` is ``tensor`` or a tuple, list or dict that holds it."""
    if isinstance(value, (tuple, list)):
        return any(holds(item, tensor) for item in value)
    if isinstance(value, dict):
        return any(holds(item, tensor) for item in value.values())
    return value is tensor


@pytest.mark.parametrize(
    "name, overrides",
    [("aae", {}), ("aae", {"supervised": True, "num_classes": 10}), ("aae-semi", {"labels": 20}), ("aae-cluster", {}),
     ("acai", {}), ("factor-vae", {"discriminator_hidden": (16,), "code_memory": 2})],
)
def test_the_second_player_reuses_what_the_autoencoder_player_put_in_the_batch_state(name, overrides, digits):
    """The discriminator (or critic) takes the codes (or decoded mixtures) of the batch from the state the
    autoencoder player filled, detached, instead of encoding again; called alone it encodes the batch itself.
    The model itself keeps nothing of the batch."""
    x, y = digits
    model = make(name, **overrides).train()
    encoder_passes = []
    model.encoder.register_forward_hook(lambda *_: encoder_passes.append(1))
    autoencoder, second = list(model.players().values())[:2]
    state = {}
    autoencoder.loss(x, y, step=0, state=state)
    assert not any(holds(value, x) for value in vars(model).values()), "the model keeps the batch"
    shared_tensors = [value for entry in state.values() for value in (entry if isinstance(entry, tuple) else (entry,))]
    assert shared_tensors and not any(value.requires_grad for value in shared_tensors)  # detached
    shared = dict(state)
    passes = len(encoder_passes)
    second.loss(x, y, step=0, state=state)["loss"].backward()
    assert len(encoder_passes) == passes  # no second encoder pass: the codes came from state
    assert all(state[key] is value for key, value in shared.items())
    second.loss(x, y, step=0)  # alone, without a state
    assert len(encoder_passes) == passes + 1


def test_critic_learns_to_predict_alpha():
    """On a tiny batch with the same mixing coefficients every step, the critic's α error shrinks and its
    guesses move from 0 to the level of α. (Telling α's apart item by item takes a trained autoencoder and
    thousands of steps; the lines benchmark run shows that.)"""
    angles = torch.rand(16, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    lines = render_lines(angles)
    model = make("acai", input_shape=(1, 32, 32), latent_dim=8, recon_loss="mse", hidden=(64,), value_range=(-1.0, 1.0))
    critic = model.players()["critic"]
    optimizer = make_optimizer(critic.parameters(), 1e-3, critic.betas, 0.0)

    def alpha_error() -> tuple[float, Tensor, Tensor]:
        torch.manual_seed(1)  # the same α every time
        with torch.no_grad():
            _, mixture, alpha = model.mix(lines)
            score = model.critic_score(model.to_data_space(mixture))
        return float((score - alpha).pow(2).mean()), score, alpha

    before, _, _ = alpha_error()
    for step in range(100):
        torch.manual_seed(1)
        terms = critic.loss(lines, None, step=step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
    after, score, alpha = alpha_error()
    assert after < 0.5 * before, (before, after)
    assert abs(float(score.mean()) - float(alpha.mean())) < 0.5 * float(alpha.mean())


def train_player(player, x: Tensor, steps: int) -> dict[str, Tensor]:
    """``steps`` Adam steps (rate 1e-2) of one player alone on the batch ``x``; its last terms."""
    optimizer = make_optimizer(player.parameters(), 1e-2, player.betas, 0.0)
    for step in range(steps):
        terms = player.loss(x, None, step=step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
    return terms


def test_r1_penalty_is_half_the_squared_gradient_norm_and_tames_the_discriminator(digits):
    linear = torch.nn.Linear(3, 1)
    assert torch.allclose(r1_penalty(linear, torch.randn(50, 3)), linear.weight.pow(2).sum() / 2)
    with pytest.raises(ValueError, match="discriminator_r1"):
        make("aae", discriminator_r1=-1.0)
    for name in ("aae", "aae-cluster"):  # validation runs without gradients: the penalty is for training only
        with torch.no_grad():
            assert "r1" not in make(name, discriminator_r1=1.0).eval().discriminator_loss(digits[0])

    # the untrained encoder's codes are far narrower than the prior: unpenalized, the discriminator grows steep
    def gradient_at_prior(weight: float) -> float:
        model = make("aae", discriminator_r1=weight)
        torch.manual_seed(1)
        terms = train_player(model.players()["discriminator"], digits[0], steps=100)
        assert ("r1" in terms) == bool(weight)
        return float(r1_penalty(model.discriminate, torch.randn(500, 4)).detach())

    assert gradient_at_prior(10.0) < 0.2 * gradient_at_prior(0.0)


def test_category_balance_spreads_a_collapsed_batch_over_the_clusters(digits):
    assert float(category_imbalance(torch.full((6, 4), 0.25))) == pytest.approx(0.0, abs=1e-6)
    assert float(category_imbalance(torch.eye(4)[[2, 2, 2]])) == pytest.approx(math.log(4), abs=1e-5)
    assert float(category_imbalance(torch.eye(4)[[0, 1, 0, 1]])) == pytest.approx(math.log(2), abs=1e-5)
    with pytest.raises(ValueError, match="category_balance"):
        make("aae-cluster", category_balance=-1.0)

    def imbalance_after_generator_steps(weight: float) -> float:
        model = make("aae-cluster", clusters=8, category_balance=weight)
        last = [layer for layer in model.encoder.modules() if isinstance(layer, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.bias[0] += 5.0  # a collapsed start: nearly every item in cluster 0
            assert float(category_imbalance(model.encode(digits[0])[:, :8])) > 1.5
        terms = train_player(model.players()["generator"], digits[0], steps=50)
        assert ("imbalance" in terms) == bool(weight)
        with torch.no_grad():
            return float(category_imbalance(model.encode(digits[0])[:, :8]))

    balanced, unbalanced = imbalance_after_generator_steps(5.0), imbalance_after_generator_steps(0.0)
    assert balanced < 0.1 and balanced < 0.25 * unbalanced, (balanced, unbalanced)


def test_consistency_teaches_the_category_head_to_ignore_small_moves(digits):
    x = digits[0]
    probabilities = torch.softmax(torch.randn(5, 4), dim=1)
    assert float(consistency_divergence(probabilities, probabilities.log())) == pytest.approx(0.0, abs=1e-6)
    assert float(consistency_divergence(probabilities, torch.zeros(5, 4))) > 0.01
    with pytest.raises(ValueError, match="consistency"):
        make("aae-cluster", consistency=-1.0)
    with pytest.raises(ValueError, match="consistency"):
        make("aae-cluster", consistency=1.0, input_shape=(64,))
    with pytest.raises(ValueError, match="consistency_shift"):
        make("aae-cluster", consistency=1.0, consistency_shift=-1)
    with pytest.raises(ValueError, match="consistency_scale"):
        make("aae-cluster", consistency=1.0, consistency_scale=1.5)

    def divergence_after_generator_steps(weight: float) -> float:
        model = make("aae-cluster", clusters=8, consistency=weight, consistency_shift=1)
        terms = train_player(model.players()["generator"], x, steps=50)
        assert ("consistency" in terms) == bool(weight)
        torch.manual_seed(3)  # the same moves for both models
        with torch.no_grad():
            moved = random_rotate_scale(random_shift(x, 1, fill=0.0), 10.0, 0.0, fill=0.0)
            return float(consistency_divergence(model.encode(x)[:, :8], model.heads(moved)[0]))

    consistent, free = divergence_after_generator_steps(5.0), divergence_after_generator_steps(0.0)
    assert consistent < 0.5 * free, (consistent, free)


def test_aae_priors():
    torch.manual_seed(0)
    mixture = sample_prior("mog", 4000, 3, components=4)
    angles = torch.atan2(mixture[:, 1], mixture[:, 0])
    radius = mixture[:, :2].norm(dim=1)
    assert abs(float(radius.mean()) - 4.0) < 0.1 and float(mixture[:, 2].std()) < 0.6
    # four components: the angles bunch around 0, π/2, π, -π/2
    nearest = torch.remainder(angles + math.pi / 4, math.pi / 2) - math.pi / 4
    assert float(nearest.abs().mean()) < 0.2
    roll = sample_prior("swiss-roll", 1000, 2)
    assert roll.shape == (1000, 2) and float(roll.norm(dim=1).max()) < 4.0
    with pytest.raises(ValueError, match="swiss-roll prior is 2-D"):
        make("aae", prior="swiss-roll", latent_dim=4)
    with pytest.raises(ValueError, match="supervised AAE needs labelled data"):
        make("aae", supervised=True)


def test_supervised_aae_style_transfer_shapes_and_labels(digits):
    x, _ = digits
    model = make("aae", supervised=True, num_classes=10)
    frames = model.style_transfer(x[:3], torch.arange(10))
    assert frames.shape == (3, 10, 1, 8, 8)
    # the label changes the picture, the style stays for every label of a row
    assert not torch.allclose(frames[0, 0], frames[0, 1])
    with pytest.raises(ValueError, match="supervised"):
        make("aae").style_transfer(x[:1], torch.arange(2))


def test_semi_supervised_classifier_sees_only_labelled_items(digits):
    x, y = digits
    model = make("aae-semi", labels=20)
    hidden = torch.full_like(y, -1)
    labels_of_some = torch.where(torch.arange(64) < 10, y, hidden)
    terms = model.classifier_loss(x, labels_of_some)
    logits, _ = model.heads(x[:10])
    assert torch.allclose(terms["loss"], torch.nn.functional.cross_entropy(logits, y[:10]))
    assert float(model.classifier_loss(x, hidden)["loss"]) == 0.0


def test_random_shift_moves_each_image_by_at_most_the_given_pixels():
    images = torch.zeros(400, 2, 9, 9)
    images[:, :, 4, 4] = 1.0  # one bright pixel in the middle of both channels
    torch.manual_seed(0)
    shifted = random_shift(images, 2, fill=0.0)
    assert shifted.shape == images.shape and torch.equal(shifted.sum(dim=(2, 3)), images.sum(dim=(2, 3)))
    where = shifted[:, 0].flatten(1).argmax(dim=1)
    rows, cols = where // 9, where % 9
    assert torch.equal(shifted[:, 0], shifted[:, 1])  # the channels of an item move together
    assert set(zip(rows.tolist(), cols.tolist())) == {(r, c) for r in range(2, 7) for c in range(2, 7)}  # all 25 offsets
    border = random_shift(torch.ones(50, 1, 5, 5), 1, fill=-1.0)
    assert ((border == 1) | (border == -1)).all() and (border == -1).any()  # uncovered pixels are the fill
    assert torch.equal(random_shift(images, 0, fill=0.0), images)


def orientation_degrees(images: torch.Tensor) -> torch.Tensor:
    """The angle of each image's principal axis (from its second moments of intensity), in degrees."""
    size = images.shape[-1]
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    rows, cols = coords[:, None], coords[None, :]
    weight = images[:, 0] / images[:, 0].sum(dim=(1, 2), keepdim=True)
    mu20, mu02, mu11 = (weight * cols**2).sum((1, 2)), (weight * rows**2).sum((1, 2)), (weight * rows * cols).sum((1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * mu11, mu20 - mu02))


def test_random_rotate_scale_turns_and_resizes_within_the_given_ranges():
    bar = torch.zeros(300, 1, 21, 21)
    bar[:, :, 10, 3:18] = 1.0  # a horizontal bar through the centre
    assert torch.allclose(random_rotate_scale(bar, 0.0, 0.0, fill=0.0), bar, atol=1e-6)
    torch.manual_seed(0)
    angles = orientation_degrees(random_rotate_scale(bar, 30.0, 0.0, fill=0.0))
    assert angles.abs().max() <= 31 and angles.max() > 25 and angles.min() < -25  # the whole range, both ways
    blob = torch.zeros(300, 1, 21, 21)
    blob[:, :, 8:13, 8:13] = 1.0
    mass = random_rotate_scale(blob, 0.0, 0.3, fill=0.0).sum(dim=(1, 2, 3)) / 25  # area ratio = zoom²
    assert mass.min() > 0.65**2 and mass.max() < 1.35**2 and mass.min() < 0.8 and mass.max() > 1.4
    turned = random_rotate_scale(torch.ones(50, 1, 9, 9), 45.0, 0.0, fill=-1.0)
    assert (turned[:, :, 0, 0] < 0).any() and torch.allclose(turned[:, :, 4, 4], torch.ones(50, 1))  # corners uncovered


def test_semi_supervised_label_shift_augments_only_in_training(digits):
    x, y = digits
    plain, shifting = make("aae-semi", labels=20), make("aae-semi", labels=20, label_shift=2)
    shifting.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    assert not torch.allclose(shifting.classifier_loss(x, y)["loss"], plain.classifier_loss(x, y)["loss"])
    shifting.eval()
    plain.eval()
    assert torch.allclose(shifting.classifier_loss(x, y)["loss"], plain.classifier_loss(x, y)["loss"])
    with pytest.raises(ValueError, match="label_shift transform images"):
        make("aae-semi", labels=20, label_shift=2, input_shape=(64,))
    with pytest.raises(ValueError, match="label_rotation, label_scale transform images"):
        make("aae-semi", labels=20, label_rotation=10, label_scale=0.1, input_shape=(64,))
    with pytest.raises(ValueError, match="label_scale is a largest relative change"):
        make("aae-semi", labels=20, label_scale=1.5)


def test_labelled_subset_is_balanced_and_seeded():
    labels = torch.arange(1000) % 10
    subset = balanced_subset(labels, 100, seed=3)
    assert len(subset) == 100 and torch.equal(torch.bincount(labels[subset]), torch.full((10,), 10))
    assert torch.equal(subset, balanced_subset(labels, 100, seed=3))
    assert not torch.equal(subset, balanced_subset(labels, 100, seed=4))
    with pytest.raises(ValueError, match="cannot cover all 10 classes"):
        balanced_subset(labels, 5, seed=0)


def test_semi_supervised_batches_hide_labels_and_append_labelled_items():
    x = torch.arange(200, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(200) % 10
    subset = balanced_subset(y, 20, seed=0)
    batches = SemiSupervisedBatches(x, y, subset, labelled_batch_size=8, batch_size=32, seed=0)
    seen = []
    for batch_x, batch_y in batches:
        assert (batch_y[:-8] == -1).all()
        tail = batch_x[-8:, 0].long()
        assert set(tail.tolist()) <= set(subset.tolist()) and torch.equal(batch_y[-8:], y[tail])
        seen += tail.tolist()
    assert set(seen) == set(subset.tolist())  # the subset is cycled through


def test_lines_metrics_on_true_smooth_and_jumpy_interpolations():
    steps, pairs = 16, 6
    starts = torch.linspace(0.3, 2.0, pairs, dtype=torch.float64)
    ends = starts + 1.2
    sweep = torch.stack([starts + (ends - starts) * t for t in torch.linspace(0, 1, steps, dtype=torch.float64)])
    smooth = render_lines(sweep.flatten().float()).reshape(steps, pairs, 1, 32, 32)
    scores = score_interpolations(smooth)
    assert scores["mean_distance"] < 1e-3 and scores["smoothness"] < 0.02
    halfway = torch.cat([starts.expand(steps // 2, pairs), ends.expand(steps // 2, pairs)])
    jumpy = render_lines(halfway.flatten().float()).reshape(steps, pairs, 1, 32, 32)
    assert score_interpolations(jumpy)["smoothness"] == pytest.approx(1 - 1 / 15, abs=0.02)
    # a cross-fade of two lines is no line: far from every reference
    fade = torch.stack([(1 - t) * smooth[0] + t * smooth[-1] for t in torch.linspace(0, 1, steps)])
    assert score_interpolations(fade)["mean_distance"] > 20 * scores["mean_distance"]
    # an interpolation that does not move has no score and counts as 0; when none moves there is no mean
    assert np.isnan(smoothness(np.zeros((1, 5)))[0])
    still = smooth[:1].expand(steps, -1, -1, -1, -1)
    assert math.isnan(score_interpolations(still)["smoothness"])
    half_still = torch.cat([jumpy[:, :3], still[:, 3:]], dim=1)
    assert score_interpolations(half_still)["smoothness"] == pytest.approx((1 - 1 / 15) / 2, abs=0.01)
    # angles are unwrapped across 2π
    assert smoothness(np.array([[6.0, 6.2, 6.4 - 2 * np.pi]]))[0] == pytest.approx(0.0, abs=1e-9)


def test_matched_accuracy_ignores_cluster_names():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert matched_accuracy(np.array([2, 2, 0, 0, 1, 1]), labels) == 1.0
    assert matched_accuracy(np.array([0, 0, 0, 0, 1, 1]), labels) == pytest.approx(4 / 6)


def test_cluster_stability_counts_items_that_keep_their_cluster_when_moved(digits):
    x = digits[0]
    dataset = Dataset("digits", x, x, x, None, None, None, (1, 8, 8), (0.0, 1.0), 0, "unlabelled digits")
    still = make("aae-cluster", clusters=8, consistency_shift=0, consistency_rotation=0.0)
    assert cluster_stability(still, dataset) == 1.0  # moves of size 0 change no item
    shaken = make("aae-cluster", clusters=8, consistency_shift=3, consistency_rotation=90.0, consistency_scale=0.3)
    stability = cluster_stability(shaken, dataset)
    assert 0.0 < stability < 1.0
    assert cluster_stability(shaken, dataset) == stability  # the seed fixes the moves
    with pytest.raises(ValueError, match="cluster_stability"):
        cluster_stability(make("ae"), dataset)


def test_acai_network_pads_images_it_cannot_halve():
    """MNIST's 28x28 is padded to 32x32 (as in the paper) so that 3 halvings leave a 4x4 map: latent 32 = 2x4x4."""
    model = make("acai", input_shape=(1, 28, 28), arch="acai", depth=4, scales=3, latent_dim=32)
    x = torch.rand(3, 1, 28, 28)
    assert model.encode(x).shape == (3, 32)
    assert model.reconstruct(x).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="multiple of 16"):
        make("acai", input_shape=(1, 28, 28), arch="acai", depth=4, scales=3, latent_dim=20)
