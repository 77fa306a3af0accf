# Two commands do all the set-up on a fresh machine:
#   make demo   installs what is missing (a .venv here) and runs the main job on digits
#   make test   the same install, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test install clean-venv readme-numbers

install: $(STAMP)

# Reinstall only when the dependency list or the pinned pair changes.
$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bench run --methods standard --noise sym:0.4 --seeds 3

test: $(STAMP)
	$(BIN)/pytest -q

# Every measured number of the READMEs, trained into .readme-runs/ (resumable) and rewritten in
# place between <!-- numbers: NAME --> markers; the blocks are listed in benchmarks/readme_blocks.py.
readme-numbers: $(STAMP)
	$(BIN)/python benchmarks/readme_numbers.py

clean-venv:
	rm -rf $(VENV)
