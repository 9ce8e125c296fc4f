# Two commands: `make run` serves the app, `make test` runs every test.
VENV    := .venv
PY      := $(VENV)/bin/python
HOST    ?= 127.0.0.1
PORT    ?= 5000

.PHONY: run test venv dev-venv system-deps worker bench chaos multihost fuzz clean

run: $(VENV)/.runtime
	$(PY) -m webapp --host $(HOST) --port $(PORT)

worker: $(VENV)/.runtime
	$(PY) huey_worker.py

# The tests spend most of their time waiting on the servers and workers they start, so they
# run in parallel worker processes (pytest-xdist; each starts its own Redis, PostgreSQL and
# stacks on free ports). `make test TEST_PROCESSES=0` runs them in this one process.
TEST_PROCESSES ?= 2
test: $(VENV)/.dev system-deps
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist worksteal $(PYTEST_ARGS)

$(VENV)/bin/python:
	@python=$$(scripts/find-python) && echo "creating $(VENV) with $$python" && "$$python" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# redis-server, chromium and postgresql come from the system's packages; install them where missing
# and possible (root or passwordless sudo with apt-get). Tests that need them say so loudly.
system-deps:
	@scripts/install-system-deps

# The long chaos run (a short version is part of `make test`): kills, outages, restarts; prints
# its figures at the end.
chaos: $(VENV)/.dev system-deps
	CHAOS_LONG=1 $(PY) -m pytest tests/chaos -q --timeout 900 $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) bench/bench_pipeline.py --tasks 3000
	$(PY) bench/bench_enqueue.py --requests 300 --rounds 1 --connections 1,4 --floor
	$(PY) bench/bench_writer.py --requests 50
	$(PY) bench/bench_fanout.py --clients 500 --seconds 3 --flood 500
	$(PY) bench/bench_api_load.py --seconds 6
	$(PY) bench/bench_stream_flood.py --streams 1000
	$(PY) bench/bench_history.py

# Seven hosts of the test's own making (network namespaces; Linux, root) under faults: 300 tasks.
# `make test` runs a short version (40 tasks).
multihost: $(VENV)/.dev system-deps
	$(PY) -m tests.multihost $(MULTIHOST_ARGS)

# The API fuzzed for 5xx answers on SQLite and PostgreSQL, longer than in `make test`: every
# path (pages too) and 100 random cases per operation after the boundary values.
fuzz: $(VENV)/.dev system-deps
	FUZZ_EXAMPLES=100 FUZZ_ALL_PATHS=1 $(PY) -m pytest tests/test_auth.py -k test_fuzzed -p no:timeout $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
