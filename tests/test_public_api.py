"""The public API: what `import autoencoders` offers, lazily and listed."""

from __future__ import annotations

import subprocess
import sys

import autoencoders
from autoencoders.models import MODELS


def test_every_model_class_is_importable_from_the_package_and_listed():
    for cls in MODELS.values():
        assert getattr(autoencoders, cls.__name__) is cls
        assert cls.__name__ in dir(autoencoders)
    assert {"train", "tune", "load", "evaluate", "AnomalyDetector", "InputError"} <= set(dir(autoencoders))


def test_from_pretrained_through_the_package(tmp_path):
    from autoencoders import AE, VAE

    run = autoencoders.train("vae", "digits", tmp_path / "run", hidden=(8,), latent_dim=2, max_steps=2, progress=False)
    assert isinstance(VAE.from_pretrained(run), VAE)
    try:
        AE.from_pretrained(run)
    except autoencoders.InputError as error:
        assert "holds a 'vae' model, not a 'ae'" in str(error)
    else:
        raise AssertionError("a VAE loaded as an AE")


def test_importing_the_package_stays_light():
    code = "import sys, autoencoders; from autoencoders import __version__; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_train_model_help_lists_that_models_own_settings():
    from typer.testing import CliRunner

    from autoencoders.cli import app

    result = CliRunner().invoke(app, ["train", "aae", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--discriminator-r1" in result.output and "weight of the R1 gradient penalty" in result.output
    assert "--gamma" not in result.output  # FactorVAE's, not the AAE's
    plain = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert plain.exit_code == 0 and "autoencoders train MODEL --help" in plain.output


def test_every_metric_has_a_unit_and_a_direction():
    from autoencoders.catalog import METRIC_UNITS, metric_unit
    from autoencoders.metrics import METRICS

    assert set(METRICS) - {"fid_domain", "kid_domain", "precision_domain", "recall_domain"} <= set(METRIC_UNITS)
    assert all(direction in ("↑", "↓") for _, direction in METRIC_UNITS.values())
    assert metric_unit("val/psnr") == ("dB", "↑") and metric_unit("fid_domain_gmm") == ("", "↓")


def test_declared_capabilities_match_what_each_family_has():
    import dataclasses

    for name, cls in MODELS.items():
        fields = {field.name for field in dataclasses.fields(cls.config_class)}
        assert cls.has_likelihood == all(hasattr(cls, method) for method in ("log_importance_weights", "negative_elbo", "kl_divergence")), name
        assert cls.gaussian_posterior == hasattr(cls, "posterior"), name
        assert cls.has_code_prior == hasattr(cls, "sample_prior"), name
        assert cls.classifies == (hasattr(cls, "predict") and hasattr(cls, "move")), name
        assert cls.denoises == ("noise" in fields), name
        assert (cls.quantization_step is not None) == (name == "compressive-ae"), name
    assert {name for name, cls in MODELS.items() if cls.classifies} == {"aae-semi", "aae-cluster"}


def test_train_reads_the_same_run_file_as_the_command_line(tmp_path):
    import json

    import pytest

    run_file = tmp_path / "run.yaml"
    run_file.write_text(f"data: digits\nout: {tmp_path / 'run'}\nhidden: 16,8\nlatent_dim: 3\nmax_steps: 3\nlr: 2e-3\nset:\n  recon_loss: mse\nbeta: 0.5\n")
    run = autoencoders.train("vae", config=run_file, latent_dim=2, progress=False)  # what is given here wins
    saved = json.loads((run / "config.json").read_text())
    assert run == tmp_path / "run" and saved["training"]["lr"] == 0.002
    assert (saved["model"]["config"]["latent_dim"], saved["model"]["config"]["hidden"]) == (2, [16, 8])
    assert (saved["model"]["config"]["recon_loss"], saved["model"]["config"]["beta"]) == ("mse", 0.5)
    run_file.write_text("- a list\n")
    with pytest.raises(autoencoders.InputError, match="must hold a mapping"):
        autoencoders.train("vae", config=run_file)
    with pytest.raises(autoencoders.InputError, match="which data"):
        autoencoders.train("vae")


def test_a_model_with_its_users_own_networks_saves_and_loads_with_them(tmp_path):
    import pytest
    import torch
    from torch import nn

    from autoencoders import VAE
    from autoencoders.models.vae import VAEConfig

    def networks():
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.Tanh(), nn.Linear(24, 2 * 3))  # mean, log-variance
        decoder = nn.Sequential(nn.Linear(3, 64), nn.Unflatten(1, (1, 8, 8)))
        return encoder, decoder

    config = VAEConfig(input_shape=(1, 8, 8), latent_dim=3, recon_loss="mse")
    encoder, decoder = networks()
    model = VAE.with_networks(config, encoder=encoder, decoder=decoder)
    assert model.encoder is encoder and model.config.arch == "custom"
    x = torch.rand(5, 1, 8, 8)
    model.loss(x)["loss"].backward()
    assert encoder[1].weight.grad is not None  # the given modules are the ones trained
    model.save_pretrained(tmp_path / "custom")
    loaded = VAE.from_pretrained(tmp_path / "custom", *[module.apply(lambda m: None) for module in networks()])
    assert torch.equal(loaded.encode(x), model.eval().encode(x))
    with pytest.raises(autoencoders.InputError, match="own encoder and decoder"):
        VAE.from_pretrained(tmp_path / "custom")
    with pytest.raises(ValueError, match=r"needs \(2, 6\)"):
        VAE.with_networks(config, encoder=nn.Sequential(nn.Flatten(), nn.Linear(64, 3)))
