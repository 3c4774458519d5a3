# Everyday commands; `make help` lists them. CI (.ci/run) runs `lint` and then `test`.
PYTHON ?= python

# Unit tests must not need a database: point them at an address where none listens, so any query fails.
NO_DATABASE = DATABASE_URL=postgres://unit-tests-need-no-database@127.0.0.1:1/none

.PHONY: help lint format test test-unit test-browser bench bench-search bench-pipeline bench-crawl bench-decode-memory bench-extraction bench-offline-quality

help:
	@echo "make lint          ruff check + ruff format --check"
	@echo "make format        ruff format + ruff check --fix"
	@echo "make test          the whole suite (README's test command)"
	@echo "make test-unit     tests/unit, with no database at all"
	@echo "make test-browser  tests/browser (Chromium + chromedriver)"
	@echo "make bench         every bench/ script (long; see bench/README.md)"

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

test:
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -n 2 --dist loadgroup

test-unit:
	$(NO_DATABASE) OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q tests/unit

test-browser:
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q tests/browser

# One target per bench/ script, with the command bench/README.md gives for it.
bench: bench-search bench-pipeline bench-crawl bench-decode-memory bench-extraction bench-offline-quality

bench-search:
	OMP_NUM_THREADS=1 $(PYTHON) bench/search.py

bench-pipeline:
	$(PYTHON) bench/pipeline.py

bench-crawl:
	$(PYTHON) bench/crawl.py

bench-decode-memory:
	$(PYTHON) bench/decode_memory.py

bench-extraction:
	$(PYTHON) bench/extraction.py

bench-offline-quality:
	$(PYTHON) bench/offline_quality.py
