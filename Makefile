# The README's two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENV_FILE ?= .env
# The port `cryptoetl serve` listens on: API_PORT from the environment, else from $(ENV_FILE)
# (as the service reads it), else 8000. API_URL overrides the whole address.
API_PORT ?= $(shell sed -nE "s/^[[:space:]]*(export[[:space:]]+)?API_PORT[[:space:]]*=[[:space:]]*['\"]?([0-9]+).*/\2/p" \
	"$(ENV_FILE)" 2>/dev/null | tail -n 1)
API_URL ?= http://localhost:$(or $(API_PORT),8000)
# GET a path of the running service: the body, and a non-zero exit when it cannot be reached or
# answers an error status (curl's own status is kept, not swallowed by the echo after it).
define get
	@curl -sS --fail-with-body "$(API_URL)$(1)"; code=$$?; echo; exit $$code
endef
SOURCES ?=
# Installs are redone only when pyproject.toml changes (the stamp files are older than it).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
# `docker compose` (the plugin), else the standalone `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
.PHONY: help run test lint fmt migrate etl health stats data up down logs clean bench-api bench-assets bench-web bench-export bench-backfill

help: ## list every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP) ## create .venv, install, and serve on the embedded database (Ctrl-C stops)
	$(BIN)/cryptoetl serve

test: lint ## create .venv, install dev tools, lint, and run the whole test suite
	$(BIN)/pytest

lint: $(DEV_STAMP) ## ruff, mypy (strict) and the import layers contract (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(DEV_STAMP) ## format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(RUN_STAMP) ## apply pending migrations to the configured database
	$(BIN)/cryptoetl migrate

# `make etl`: ADMIN_TOKEN from the environment, else from $(ENV_FILE); SOURCES="csv coingecko"
# runs only those. The token goes to curl on stdin, never on a command line `ps` can show.
etl: ## trigger an ETL run on the running service (ADMIN_TOKEN from the env or .env; SOURCES="a b")
	@token="$${ADMIN_TOKEN:-$$(sed -nE 's/^[[:space:]]*(export[[:space:]]+)?ADMIN_TOKEN[[:space:]]*=[[:space:]]*//p' \
		"$(ENV_FILE)" 2>/dev/null | tail -n 1 | sed -E "s/[[:space:]]+$$//; s/^(['\"])(.*)\1$$/\2/")}"; \
	if [ -z "$$token" ]; then echo "make etl: set ADMIN_TOKEN in the environment or in $(ENV_FILE)" >&2; exit 2; fi; \
	query=""; for source in $(SOURCES); do query="$$query&source=$$source"; done; \
	printf 'Authorization: Bearer %s\n' "$$token" | curl -sS --fail-with-body -X POST -H @- \
		"$(API_URL)/admin/etl/run?$${query#&}"; code=$$?; echo; exit $$code

health: ## GET /api/v1/health of the running service (non-zero exit when down or unhealthy)
	$(call get,/api/v1/health)

stats: ## GET /api/v1/stats of the running service
	$(call get,/api/v1/stats)

data: ## GET the first 10 rows of /api/v1/data from the running service
	$(call get,/api/v1/data?page=1&page_size=10)

up: ## build the image and start postgres + api in the background (needs .env)
	@test -f .env || { echo "no .env: run 'cp .env.example .env' and set POSTGRES_PASSWORD" >&2; exit 1; }
	$(COMPOSE) up -d --build

down: ## stop and remove the containers; the database volume is kept
	$(COMPOSE) down

logs: ## follow the containers' logs (Ctrl-C stops following, not the services)
	$(COMPOSE) logs -f --tail=200

clean: ## remove the containers, the built image AND the database volume (deletes the data)
	$(COMPOSE) down --volumes --rmi local --remove-orphans

bench-api: $(DEV_STAMP) ## the API bench: 1,000,000 rows, a real server, wrk (see docs/benchmarks.md)
	$(BIN)/python bench/api.py
	$(BIN)/python bench/api_ingest_cost.py

bench-assets: $(DEV_STAMP) ## the assets bench: a year of hourly history among 1,000,000 rows (docs/benchmarks.md)
	$(BIN)/python bench/assets.py
	$(BIN)/python bench/assets_index_cost.py

bench-export: $(DEV_STAMP) ## the export bench: peak memory and rate of exporting 1,000,000 rows (docs/benchmarks.md)
	$(BIN)/python bench/export.py

bench-web: $(DEV_STAMP) ## the dashboard bench: each page's latency on 1,000,000 rows (see docs/benchmarks.md)
	$(BIN)/python bench/pages.py

bench-backfill: $(DEV_STAMP) ## the backfill bench: a year of hourly history for 20 coins end to end (docs/backfill.md)
	$(BIN)/python bench/backfill.py
