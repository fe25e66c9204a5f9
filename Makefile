# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export PORT
# The demo's own address: client assertions name $(PUBLIC_URL)/oauth/token as their aud.
PUBLIC_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Set up a SQLite broker with the demo convenant and demo party keys, and serve it on $PORT.
## The local demo runs on plain http, so its review session cookie cannot be `Secure`.
run: install
	$(BIN)/broker init
	BROKER_PUBLIC_URL=$(PUBLIC_URL) $(BIN)/broker demo setup
	BROKER_SESSION_COOKIE_SECURE=false BROKER_PUBLIC_URL=$(PUBLIC_URL) $(BIN)/broker serve --port $(PORT)

## Run the whole test suite (SQLite unless BROKER_DATABASE_URL names a PostgreSQL database).
test: install
	$(BIN)/pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy audit keys schemas broker

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) instance .pytest_cache
