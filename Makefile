# Thin index of entry points; the logic lives in Python (python -m bench ...).
PY := .venv/bin/python
STAMP := .venv/.installed
# The data folder: CIFAR-10 in any of the forms bench/datafiles.py accepts.
export SPLITBENCH_DATA ?= ../shared/data
SPEC ?= quick
WORKERS ?=
EXPERIMENT ?= quick
ARGS ?=

.PHONY: install system-packages test test-slow run list ui dashboard bench gpu-check sweep report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(MAKE) system-packages
	python3 -m venv .venv
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the tests use: Fashion-MNIST's files, the PostgreSQL server the sweep tests start,
# the headless Chromium the report's browser test drives. Skipped where apt-get or root is missing
# (those tests then skip, saying why).
DEBIAN_PACKAGES := dataset-fashion-mnist postgresql chromium
system-packages:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "skipping Debian packages (needs apt-get as root)"; fi

# One pytest-xdist worker per core, each computing on one thread (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -n auto $(ARGS)

# Long real-data, server and browser tests: a test may take minutes, so a hang is cut at 30.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow --timeout 1800 $(ARGS)

run: $(STAMP)
	$(PY) -m bench run $(ARGS)

list: $(STAMP)
	$(PY) -m bench list $(ARGS)

ui: $(STAMP)
	$(PY) -m mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

# optuna-dashboard on the sweeps' Optuna storage (OPTUNA_STORAGE or sqlite:///optuna.db), on 127.0.0.1:8080.
dashboard: $(STAMP)
	$(PY) -m bench dashboard $(ARGS)

bench: $(STAMP)
	$(PY) -m bench.benchmark $(ARGS)

# The device check (bench/gpu_check.py). No install step: a GPU machine may have PyTorch and no
# package registry, so it runs with the project's environment where there is one, else python3.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),python3) -m bench.gpu_check $(ARGS)

sweep: $(STAMP)
	$(PY) -m bench sweep --spec $(SPEC) $(if $(WORKERS),--workers $(WORKERS)) $(ARGS)

report: $(STAMP)
	$(PY) -m reports --experiment $(EXPERIMENT) $(ARGS)

clean:
	rm -rf reports/out .pytest_cache build *.egg-info
