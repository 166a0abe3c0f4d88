# One place that installs the project: a venv in .venv from the exact pins in
# requirements/lock.txt (installed with --no-deps: Safety-Gymnasium 1.0.0's own pins
# include pygame==2.1.0, which has no Python 3.11 wheel and is never imported).
PYTHON ?= python3.11
VENV   ?= .venv
STAMP  := $(VENV)/.installed

.PHONY: install train test test-slow clean
install: $(STAMP)

$(STAMP): requirements/lock.txt requirements/wandb.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade "pip==25.3"
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements/lock.txt
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements/wandb.txt  # optional extra, ~4 s
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/safedreamer train $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow $(ARGS)

clean:
	rm -rf $(VENV)
