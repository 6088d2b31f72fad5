# Two entry points (README): `make demo` and `make test`. Each creates .venv once;
# the stamp file makes a second run skip the set-up until pyproject/constraints change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow lint format bench lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The performance suite (docs/performance.md). The PyTorch rows of bench_trainer need the
# optional extra: .venv/bin/pip install -e '.[bench]' (skipped with a note otherwise).
bench: $(STAMP)
	$(PY) -m experiments.bench trainer
	$(PY) -m experiments.bench diagnose
	$(PY) -m experiments.bench averaging
	$(PY) -m experiments.bench data
	$(PY) -m experiments.bench accelerator
	$(PY) -m experiments.bench recursion --settings 0 --bench_dir /tmp/anytime_theory_bench
	$(PY) -m experiments.linreg fig3 --out /tmp/anytime_fig3

lock: $(STAMP)
	{ echo "# Exact versions CI and 'make' install (pip -c). Regenerate with: make lock"; \
	  $(PY) -m pip freeze --exclude-editable; } > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
