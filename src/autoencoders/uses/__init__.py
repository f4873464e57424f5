"""What people use trained autoencoders for: one module per use (denoising, the scikit-learn estimator ...)."""
