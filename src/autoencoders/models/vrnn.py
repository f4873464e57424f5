"""Variational RNN (Chung et al. 2015): a VAE at every step of a sequence, tied together by a recurrent state.

For items of shape (length, *step) (a series (T, C), one-hot text (T, alphabet), frames (T, C, H, W)) with
h_0 = 0 and, at every step t,

    prior       p(z_t | h_{t-1})            = N(μ_prior(h_{t-1}), σ_prior(h_{t-1}))
    posterior   q(z_t | x_t, h_{t-1})       = N(μ_q(φx(x_t), h_{t-1}), σ_q(...))
    decoder     p(x_t | z_t, h_{t-1})       Gaussian (mean and scale per value, ``recon_loss="mse"``),
                                            Bernoulli (``"bce"``) or categorical over the last axis
                                            (``"categorical"``, one-hot characters)
    recurrence  h_t = RNN([φx(x_t), φz(z_t)], h_{t-1})        (GRU or LSTM, ``cell``)

The loss is the negative ELBO summed over time, Σ_t E_q[-log p(x_t|z_t, h_{t-1})] + KL(q_t || p_t), with each
KL between two diagonal Gaussians in closed form.

The code of a sequence (``encode``) is its per-step posterior means z_1..z_T, flattened; ``decode`` runs the
generative recurrence with those latents, feeding each step's expected value (the most likely character
for text) back as x_t. ``interpolate`` decodes points on the line between two sequences' per-step latents.
``reconstruct`` is what the model makes of each step of a given sequence: the decoder's expected x_t from the
posterior-mean z_t and the state h_{t-1} of the true past (teacher forcing), as in training; for one-step
sequences it equals decode(encode(x)). ``sample`` draws z_t from the prior and x_t from the decoder, step by
step. ``score_steps`` gives each step's negative ELBO: the per-step anomaly score.

A VRNN's state carries much of a sequence (the decoder sees h_{t-1}), so its per-step latents may hold little
beyond what the past predicts (small KL): then decoding latents alone reproduces the model's typical
continuation rather than the sequence, and interpolations between two sequences' latents differ little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoencoders.losses import diagonal_normal_log_prob
from autoencoders.models.base import Autoencoder, ModelConfig, Output
from autoencoders.nn.recurrent import check_cell

LIKELIHOODS = {"mse": "Gaussian", "bce": "Bernoulli", "categorical": "categorical"}


@dataclass
class VRNNConfig(ModelConfig):
    """``recon_loss`` names the decoder: mse (Gaussian), bce (Bernoulli) or categorical (one-hot text)."""

    input_shape: tuple[int, ...] = (64, 3)  # (length, *step)
    latent_dim: int = 16  # per step
    state_size: int = 128  # h_t
    feature_size: int = 64  # φx, φz and the hidden layers of prior, posterior and decoder
    sample_length: int = 0  # steps ``sample`` generates; 0: the training sequences' length
    min_scale: float = 1e-3  # Gaussian decoder: floor of the output scale, so the likelihood stays bounded

    recon_losses: ClassVar[tuple[str, ...]] = tuple(LIKELIHOODS)  # mse: Gaussian (series), bce: Bernoulli, categorical: text
    bounds: ClassVar[dict[str, tuple[float, float]]] = {
        **ModelConfig.bounds, "state_size": (1, 2**16), "feature_size": (1, 2**16),
    }
    search_space: ClassVar[dict[str, dict]] = {**ModelConfig.search_space, "state_size": {"type": "categorical", "choices": [64, 128, 256]}}


def gaussian_kl_between(mean_q: Tensor, log_var_q: Tensor, mean_p: Tensor, log_var_p: Tensor) -> Tensor:
    """KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p))), summed over the last axis."""
    ratio = (log_var_q - log_var_p).exp()
    return 0.5 * (ratio + (mean_q - mean_p).square() * (-log_var_p).exp() - 1.0 - (log_var_q - log_var_p)).sum(-1)


def _mlp(*widths: int, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if last_activation or index < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VRNN(Autoencoder):
    name = "vrnn"
    has_likelihood = True
    config_class = VRNNConfig
    generative = True

    def __init__(self, config: VRNNConfig):
        super().__init__(config)
        if len(config.input_shape) < 2:
            raise ValueError(
                f"a VRNN takes sequences of shape (length, channels) or (length, *step); got items of shape "
                f"{tuple(config.input_shape)}. Table rows become sequences with --set data.window=LENGTH"
            )
        self.cell_name = check_cell(config.cell)
        self.step_shape = tuple(config.input_shape[1:])
        self.step_size = math.prod(self.step_shape)
        if config.recon_loss == "categorical" and len(self.step_shape) != 1:
            raise ValueError(f"the categorical decoder needs one-hot steps (length, classes); got {tuple(config.input_shape)}")
        width, latent, state = config.feature_size, config.latent_dim, config.state_size
        outputs = 2 * self.step_size if config.recon_loss == "mse" else self.step_size
        self.phi_x = _mlp(self.step_size, width, width)
        self.phi_z = _mlp(latent, width)
        self.prior_net = _mlp(state, width, 2 * latent, last_activation=False)
        self.posterior_net = _mlp(width + state, width, 2 * latent, last_activation=False)
        self.decoder_net = _mlp(width + state, width, width, outputs, last_activation=False)
        self.cell = (nn.GRUCell if self.cell_name == "gru" else nn.LSTMCell)(2 * width, state)

    @classmethod
    def data_settings(cls, dataset, settings: dict[str, Any]) -> dict[str, Any]:
        """One-hot characters (the ``text`` dataset) take the categorical decoder."""
        return {"recon_loss": "categorical"} if dataset.preprocessing.get("kind") == "characters" else {}

    # -- pieces of one step -----------------------------------------------------------------------------
    @property
    def length(self) -> int:
        return self.config.input_shape[0]

    @property
    def code_size(self) -> int:
        return self.length * self.config.latent_dim

    def _initial_state(self, batch: int) -> Tensor | tuple[Tensor, Tensor]:
        zeros = self.phi_z[0].weight.new_zeros(batch, self.config.state_size)
        return (zeros, zeros) if self.cell_name == "lstm" else zeros

    def _hidden(self, state: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        return state[0] if self.cell_name == "lstm" else state

    def _steps(self, x: Tensor) -> Tensor:
        """Items (B, T, *step) as (B, T, step_size)."""
        if tuple(x.shape[2:]) != self.step_shape:
            raise ValueError(
                f"this VRNN takes sequences of shape (length, {', '.join(map(str, self.step_shape))}); "
                f"got a batch of shape {tuple(x.shape)}"
            )
        return x.flatten(2)

    def _step_log_likelihood(self, decoded: Tensor, x: Tensor) -> Tensor:
        """log p(x_t | z_t, h_{t-1}) for every step: (..., step_size) raw outputs -> (...)."""
        if self.config.recon_loss == "bce":
            return -F.binary_cross_entropy_with_logits(decoded, x, reduction="none").sum(-1)
        if self.config.recon_loss == "categorical":
            return (F.log_softmax(decoded, dim=-1) * x).sum(-1)
        mean, log_scale = self._gaussian(decoded)
        return (-0.5 * ((x - mean) * torch.exp(-log_scale)).square() - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    def _gaussian(self, decoded: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw_scale = decoded.chunk(2, dim=-1)
        return mean, torch.log(F.softplus(raw_scale) + self.config.min_scale)

    def _expected(self, decoded: Tensor) -> Tensor:
        """A step's expected value in data space, (B, step_size); for text the most likely character, one-hot."""
        if self.config.recon_loss == "bce":
            return torch.sigmoid(decoded)
        if self.config.recon_loss == "categorical":
            return F.one_hot(decoded.argmax(-1), self.step_size).to(decoded.dtype)
        return self._gaussian(decoded)[0]

    def _draw(self, decoded: Tensor) -> Tensor:
        """A step drawn from p(x_t | z_t, h_{t-1}), (B, step_size)."""
        if self.config.recon_loss == "bce":
            return torch.bernoulli(torch.sigmoid(decoded))
        if self.config.recon_loss == "categorical":
            return F.one_hot(torch.multinomial(decoded.softmax(-1), 1)[:, 0], self.step_size).to(decoded.dtype)
        mean, log_scale = self._gaussian(decoded)
        return mean + log_scale.exp() * torch.randn_like(mean)

    # -- inference: the posterior filter over a whole sequence -----------------------------------------
    def infer(self, x: Tensor, sample: bool = True) -> dict[str, Tensor]:
        """Run q over ``x`` (B, T, *step): per step the states h_{t-1}, latents, posterior and prior
        parameters, decoder outputs and log p(x_t|z_t, h_{t-1}), each (B, T, ...).

        ``sample=False`` uses the posterior means as the latents (the deterministic code).
        """
        steps = self._steps(x)
        batch, length = steps.shape[:2]
        features = self.phi_x(steps)  # φx needs no state: all steps at once
        state = self._initial_state(batch)
        previous, latents, latent_features, means, log_vars = [], [], [], [], []
        for t in range(length):
            hidden = self._hidden(state)
            mean, log_var = self.posterior_net(torch.cat([features[:, t], hidden], -1)).chunk(2, -1)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean) if sample else mean
            z_features = self.phi_z(z)
            state = self.cell(torch.cat([features[:, t], z_features], -1), state)
            previous.append(hidden)
            latents.append(z)
            latent_features.append(z_features)
            means.append(mean)
            log_vars.append(log_var)
        hidden = torch.stack(previous, 1)
        # prior and decoder read h_{t-1} and z_t only, so they run on all steps at once after the loop
        prior_mean, prior_log_var = self.prior_net(hidden).chunk(2, -1)
        decoded = self.decoder_net(torch.cat([torch.stack(latent_features, 1), hidden], -1))
        return {
            "latent": torch.stack(latents, 1), "mean": torch.stack(means, 1), "log_var": torch.stack(log_vars, 1),
            "prior_mean": prior_mean, "prior_log_var": prior_log_var, "decoded": decoded,
            "log_likelihood": self._step_log_likelihood(decoded, steps),
        }

    def _step_kl(self, inferred: dict[str, Tensor]) -> Tensor:
        return gaussian_kl_between(inferred["mean"], inferred["log_var"], inferred["prior_mean"], inferred["prior_log_var"])

    # -- the interface ----------------------------------------------------------------------------------
    def loss(self, x: Tensor, y: Tensor | None = None, step: int = 0, state: dict | None = None) -> dict[str, Tensor]:
        inferred = self.infer(x)
        recon = -inferred["log_likelihood"].sum(1).mean()
        kl = self._step_kl(inferred).sum(1).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        inferred = self.infer(x)
        return Output(decoded=inferred["decoded"], latent=inferred["latent"].flatten(1), extras=inferred)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.infer(x, sample=False)["mean"].flatten(1)

    def _latent_steps(self, z: Tensor) -> Tensor:
        """Codes (B, T * latent_dim) as (B, T, latent_dim); any whole number of steps."""
        if z.dim() != 2 or z.shape[1] % self.config.latent_dim:
            raise ValueError(
                f"VRNN codes are per-step latents flattened to (batch, steps x {self.config.latent_dim}); "
                f"got shape {tuple(z.shape)}"
            )
        return z.view(z.shape[0], -1, self.config.latent_dim)

    def _unroll(self, latents: Tensor | None, length: int, batch: int, draw: bool) -> tuple[Tensor, Tensor]:
        """The generative recurrence for ``length`` steps: (raw outputs, fed-back steps), both (B, T, ...).

        ``latents`` (B, T, latent_dim) fixes z_t; None draws them from the prior. ``draw`` samples each x_t
        from the decoder; otherwise its expected value is fed back.
        """
        state = self._initial_state(batch)
        outputs, values = [], []
        for t in range(length):
            hidden = self._hidden(state)
            if latents is None:
                prior_mean, prior_log_var = self.prior_net(hidden).chunk(2, -1)
                z = prior_mean + torch.exp(0.5 * prior_log_var) * torch.randn_like(prior_mean)
            else:
                z = latents[:, t]
            z_features = self.phi_z(z)
            decoded = self.decoder_net(torch.cat([z_features, hidden], -1))
            value = self._draw(decoded) if draw else self._expected(decoded)
            state = self.cell(torch.cat([self.phi_x(value), z_features], -1), state)
            outputs.append(decoded)
            values.append(value)
        return torch.stack(outputs, 1), torch.stack(values, 1)

    def decode_raw(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Per-step decoder outputs for the latents ``z``: logits (bce, categorical) or Gaussian means."""
        latents = self._latent_steps(z)
        decoded = self._unroll(latents, latents.shape[1], latents.shape[0], draw=False)[0]
        if self.config.recon_loss == "mse":
            decoded = self._gaussian(decoded)[0]
        return decoded.view(len(z), -1, *self.step_shape)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Each step's expected value given its posterior-mean latent and the true past (teacher forcing)."""
        decoded = self.infer(x, sample=False)["decoded"]
        if self.config.recon_loss == "mse":
            decoded = self._gaussian(decoded)[0]
        return self.to_data_space(decoded.view(x.shape))

    def to_data_space(self, decoded: Tensor) -> Tensor:
        if self.config.recon_loss == "categorical":
            return decoded.softmax(-1)
        return super().to_data_space(decoded)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, length: int | None = None) -> Tensor:
        """``n`` sequences drawn step by step from the model: (n, length, *step), one-hot steps for text."""
        length = length or self.config.sample_length or self.length
        values = self._unroll(None, length, n, draw=True)[1]
        return values.view(n, length, *self.step_shape)

    # -- scores and likelihoods -------------------------------------------------------------------------
    @torch.no_grad()
    def score_steps(self, x: Tensor, samples: int = 1) -> Tensor:
        """Per-step anomaly scores (B, T): each step's negative ELBO, -log p(x_t|z_t, h_{t-1}) + KL(q_t || p_t),
        averaged over ``samples`` posterior draws. A step the model did not expect scores high."""
        repeated = x.repeat(samples, *([1] * (x.dim() - 1)))
        inferred = self.infer(repeated)
        scores = self._step_kl(inferred) - inferred["log_likelihood"]
        return scores.view(samples, *x.shape[:2]).mean(0)

    def negative_elbo(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """-ELBO per sequence (B,), one posterior draw."""
        inferred = self.infer(x)
        return (self._step_kl(inferred) - inferred["log_likelihood"]).sum(1)

    def kl_divergence(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Σ_t KL(q(z_t|x_t, h_{t-1}) || p(z_t|h_{t-1})) per sequence (B,), one posterior draw."""
        return self._step_kl(self.infer(x)).sum(1)

    def log_importance_weights(self, x: Tensor, y: Tensor | None = None, samples: int = 1) -> Tensor:
        """log p(x, z_{1:T}) - log q(z_{1:T}|x) for ``samples`` draws of the filtering posterior: (samples, B).

        Each draw runs the whole recurrence (h depends on the drawn latents); logsumexp over the draws minus
        log(samples) estimates log p(x) (Burda et al. 2016), and one draw's expectation is the ELBO.
        """
        inferred = self.infer(x.repeat(samples, *([1] * (x.dim() - 1))))
        z = inferred["latent"]
        log_prior = diagonal_normal_log_prob(z, inferred["prior_mean"], inferred["prior_log_var"])
        log_posterior = diagonal_normal_log_prob(z, inferred["mean"], inferred["log_var"])
        weights = (inferred["log_likelihood"] + log_prior - log_posterior).sum(1)
        return weights.view(samples, x.shape[0])

    def log_marginal_likelihood(self, x: Tensor, y: Tensor | None = None, samples: int = 1000, chunk: int = 100) -> Tensor:
        """Importance-sampled log p(x) per sequence, drawing ``samples`` in chunks to bound memory."""
        parts = [self.log_importance_weights(x, y, min(chunk, samples - start)) for start in range(0, samples, chunk)]
        return torch.logsumexp(torch.cat(parts), dim=0) - math.log(samples)
