# gan-cli: `make train` and `make test` work on a machine with nothing but Python 3.10+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# test workers: one per core, at most 4 (each holds its own torch); a worker takes a whole test file, the files
# in the order tests/conftest.py gives them (most slow tests first), not xdist's (most tests first)
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, os.cpu_count() or 1))")

.PHONY: help install train test tensorboard bench bench-faults bench-translation bench-quality bench-lectures bench-blending \
        bench-unit bench-text bench-flags clean clean-runs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create the virtual environment in .venv (first time only)

train: $(STAMP) ## train the default job (the conditional GAN on the embedded MNIST digits); extra overrides: make train ARGS="model=dcgan"
	$(BIN)/gan-train $(ARGS)

test: $(STAMP) ## run the test suite, a test file per worker process (TEST_WORKERS=1 for one process)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ARGS)

tensorboard: $(STAMP) ## TensorBoard over every run in outputs/ (then open http://localhost:6006)
	$(BIN)/tensorboard --logdir outputs

bench: $(STAMP) ## training speed: gan-train (default and engine=fast) vs a plain loop, the hardware's tight loop, and the reference implementations with ARGS="--refs DIR"
	$(BIN)/python benchmarks/throughput.py $(ARGS)

bench-faults: $(STAMP) ## random SIGKILLs across the model families, each resumed and compared exactly (ARGS="--kills 6")
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/faults.py $(ARGS)

bench-translation: $(STAMP) ## learning check: CycleGAN and pix2pix error to a known true mapping, before vs after training (ARGS="--quick")
	$(BIN)/python benchmarks/translation_learning.py $(ARGS)

bench-quality: $(STAMP) ## sample quality: cgan/dcgan, then infogan, ssgan, ring8 tricks, lapgan vs dcgan, then dcgan/sngan/stylegan2(+ada) in equal time (two hours on CPU; ARGS="--quick")
	$(BIN)/python benchmarks/quality.py $(ARGS)
	$(BIN)/python benchmarks/zoo_quality.py $(ARGS)
	$(BIN)/python benchmarks/modern_quality.py $(ARGS)

bench-lectures: $(STAMP) ## RBM vs scikit-learn, DBN pre-trained vs random, CapsNet's table, VAE vs DCGAN (about an hour on CPU)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/rbm_vs_sklearn.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/dbn_pretraining.py
	$(BIN)/python benchmarks/capsnet_table.py
	$(BIN)/python benchmarks/vae_vs_dcgan.py

bench-blending: $(STAMP) ## gan-blend (GP-GAN) against Poisson blending and the raw composite on synthetic scenes
	$(BIN)/python benchmarks/blending.py $(ARGS)

bench-unit: $(STAMP) ## UNIT vs CycleGAN: held-out L1 to the truth on inverted digits, same budget (ARGS="--quick")
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/unit_vs_cyclegan.py $(ARGS)

bench-text: $(STAMP) ## text_cgan and stackgan on mnist_5k_captions: digit accuracy of samples for captions, thick vs thin strokes (ARGS="--quick")
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/text_to_image.py $(ARGS)

bench-flags: $(STAMP) ## the world-flags experiment: VAE, DCGAN and DCGAN with tricks on the 256 real flags, recall/coverage and distinct flags; grids into docs/ (ARGS="--quick")
	$(BIN)/python benchmarks/flags.py $(ARGS)

clean-runs: ## delete the run folders in outputs/
	rm -rf outputs

clean: ## delete the virtual environment and build files
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
