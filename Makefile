# ptlnic: the two commands are `make demo` and `make test`.
# Each creates .venv and installs the pinned dependencies from PyPI on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ptlnic-deps

.PHONY: demo test bench synth clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; Python 3.11 with the venv module is needed" >&2; exit 1; }
	@echo "installing the pinned dependencies into $(VENV) (first run only; log in $(VENV)/install.log)"
	@$(PY) -m pip install -e . > $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	@touch $@

demo: $(STAMP)
	$(PY) -m sim.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2

bench: $(STAMP)
	$(PY) -m sim.bench

synth: $(STAMP)
	@$(PY) -m pip install -e '.[synth]' >> $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	$(PY) -m sim.synth

clean:
	rm -rf build
