# Lottery Lab. `make run`: set up and start the dashboard with a worker. `make test`: set up and test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RAY := $(VENV)/.ray-installed
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: setup test run ray-local quickstart experiment structured instability bench screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(RAY): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(RAY)

test: setup $(RAY)
	$(BIN)/python -m pytest -q

run: setup
	$(BIN)/python -m app.serve --home runs --host $(HOST) --port $(PORT)

ray-local: setup $(RAY)
	$(BIN)/python -m jobs.ray_local --nodes 2 --home runs

quickstart: setup
	$(BIN)/lottery run --config configs/quickstart.yaml --out runs/quickstart

experiment: setup
	$(BIN)/lottery experiment --config configs/experiment_fashion.yaml --home runs \
		--workers $$(nproc) --threads 1

# channel tickets against unstructured ones, every round exported and timed (issue 30)
structured: setup
	$(BIN)/lottery experiment --config configs/experiment_structured.yaml --home runs \
		--workers $$(nproc) --threads 1

# from which rewind step on IMP's subnetworks are stable to SGD noise (issue 31)
instability: setup
	$(BIN)/lottery experiment --config configs/experiment_instability.yaml --home runs \
		--workers $$(nproc) --threads 1

screenshots: setup
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/app/test_browser.py tests/app/test_browser_charts.py \
		tests/app/test_browser_newuser.py

# every script in benchmarks/, full mode (their --quick modes run in `make test`); _name.py are helpers
bench: setup $(RAY)
	set -e; for script in benchmarks/[!_]*.py; do \
		echo "== $$script"; TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python $$script; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
