# Two commands do all the set-up on a fresh machine:
#   make demo   installs what is missing (a .venv here) and runs the main job on digits
#   make test   the same install and the real Fashion-MNIST (make data), then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test install data clean-venv readme-numbers

install: $(STAMP)

# Reinstall only when the dependency list or the pinned pair changes.
$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

# Real images on every machine: Debian's dataset-fashion-mnist (the release's files, re-gzipped)
# under /usr/share/datasets/fashion-mnist/.  Quiet when present or installed; one line where it
# cannot be (no apt-get, not root, no package list): its tests are then skipped, saying why.
FMNIST_FILE = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
data:
	@if [ -f $(FMNIST_FILE) ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make data: no apt-get here, Fashion-MNIST not installed; use bench ... --dataset fashion-mnist --download, or put its four files in <data root>/FashionMNIST/raw"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "make data: not root, Fashion-MNIST not installed; run: sudo apt-get install dataset-fashion-mnist"; \
	elif apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	     { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; then :; \
	else echo "make data: apt-get could not install dataset-fashion-mnist (no package list or no network); Fashion-MNIST not installed"; fi

demo: $(STAMP) data
	$(BIN)/bench run --methods standard --noise sym:0.4 --seeds 3

test: $(STAMP) data
	$(BIN)/pytest -q

# Every measured number of the READMEs, trained into .readme-runs/ (resumable) and rewritten in
# place between <!-- numbers: NAME --> markers; the blocks are listed in benchmarks/readme_blocks.py.
readme-numbers: $(STAMP)
	$(BIN)/python benchmarks/readme_numbers.py

clean-venv:
	rm -rf $(VENV)
