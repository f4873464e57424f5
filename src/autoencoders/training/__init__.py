"""Training: one LightningModule for every model (module.py), the data module, and ``train`` (run.py)."""
