# mimi: `make test` and `make run` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEVSET ?= ../devset

.PHONY: setup test lint run bench docker clean

setup:
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh browser
	MIMI_WHEEL_CACHE=.cache/wheels $(BIN)/python -m pytest

# Without DISCORD_TOKEN (in .env or the environment) this opens the local playground.
run: setup
	$(BIN)/mimi run --playground

bench: setup
	@test -d $(DEVSET) || bash ../shared/bench/make_devset.sh $(DEVSET)
	$(BIN)/python bench/ingest.py --devset $(DEVSET)
	$(BIN)/python bench/train_eval.py --devset $(DEVSET)

# The home-server image (Dockerfile, docker-compose.yml); `docker compose up -d` runs it.
docker:
	docker compose build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
