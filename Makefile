# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint test-sqlite test-postgres install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

# The OpenID Connect provider the single sign-on tests start (tests/oidc: panva's oidc-provider, from npm).
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test tests/oidc/node_modules/.package-lock.json

## Serve on http://127.0.0.1:8000 (migrates, creates an admin account on first run and prints its password).
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py bootstrap --url http://$(HOST):$(PORT)/
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(BIN)/python -m chatsite.server -b $(HOST) -p $(PORT) chatsite.asgi:application

## The linter, then the whole suite: on SQLite with the in-memory channel layer, then again on PostgreSQL and Redis.
test: lint test-sqlite test-postgres

## ruff (ruff.toml): pyflakes, pycodestyle, import order, bugbear, pyupgrade, Django's rules.
lint: install-test
	$(BIN)/ruff check .

test-sqlite: install-test
	env -u OPENAI_API_KEY -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install-test
	$(BIN)/python tests/infra.py ensure
	env -u OPENAI_API_KEY DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatsite REDIS_URL=redis://127.0.0.1:6379/0 \
		CHANNELS_PREFIX=chatsite-test $(BIN)/python -m pytest -m "not browser and not infra" $(PYTEST_ARGS)

## The streaming benchmarks (see README, "Speed"); scale_load.py needs PostgreSQL and Redis.
bench: install-test
	$(BIN)/python bench/stream_load.py --suite $(BENCH_ARGS)
	$(BIN)/python tests/infra.py ensure
	$(BIN)/python bench/scale_load.py $(SCALE_ARGS)
	$(BIN)/python bench/page_render.py
	$(BIN)/python bench/sharing_load.py --viewers 100
	$(BIN)/python bench/import_load.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
