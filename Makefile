# `make demo` and `make test` do all set-up on a fresh machine (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmvit_installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow clean

install: $(STAMP)

$(STAMP): setup.py scripts/install.sh scripts/constraints.txt scripts/requirements.txt
	VENV=$(VENV) bash scripts/install.sh

demo: $(STAMP)
	VENV=$(VENV) bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work_dirs *.egg-info
