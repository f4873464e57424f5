# Two entry points on a fresh clone: `make demo` (install, train, evaluate, report) and `make test`.
# torch is installed first and pinned exactly: torch==2.13.0 resolves to the CPU wheel on these machines,
# a looser requirement would pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(abspath ../shared/data)

.PHONY: install install-dev demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"

# The main job on a built-in dataset (scikit-learn's 8x8 digits, no download): train a VAE, evaluate it on
# the test split, write its HTML report, print where it is.
demo: install
	$(BIN)/autoencoders train vae --data digits --arch mlp --hidden 256,128 --latent-dim 8 --epochs 150 --batch-size 32 \
		--out runs/demo-vae-digits --overwrite --no-progress
	$(BIN)/autoencoders report runs/demo-vae-digits

test: install-dev
	AUTOENCODERS_DATA=$${AUTOENCODERS_DATA:-$(DATA)} $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
