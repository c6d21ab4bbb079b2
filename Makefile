# `make demo` and `make test` do all set-up on a fresh machine (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmvit_installed
PYTEST_ARGS ?=

# The numerical tests again, where summation order differs from the default run: ATen's portable
# kernels instead of this CPU's vector ones (as on an older ISA), then one thread. Tolerances are
# relative to the values compared, so they hold on any machine; these runs check that they do.
# (Not -q: pytest's header then says which kernels and thread count each run used.)
NUMERICS := $(PY) -m pytest -m "numerics and not slow" $(PYTEST_ARGS)

.PHONY: install demo demo-mask2former test test-slow test-numerics test-all clean

install: $(STAMP)

$(STAMP): setup.py scripts/install.sh scripts/constraints.txt scripts/requirements.txt
	VENV=$(VENV) bash scripts/install.sh

demo: $(STAMP)
	VENV=$(VENV) bash scripts/demo.sh

# Mask2Former + a small CSWin on the demo's toy ADE20K set (README: measured time and mIoU).
demo-mask2former: $(STAMP)
	VENV=$(VENV) bash scripts/demo_mask2former.sh

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

test-numerics: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(NUMERICS)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(NUMERICS)

# Every test: the quick and the slow ones in one run, then the numerical ones under the other
# kernels and thread count (what .ci/run runs).
test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-numerics

clean:
	rm -rf $(VENV) work_dirs *.egg-info
