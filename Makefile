# The two set-up commands are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,browser,pandas,docs]'
	@touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check
	$(BIN)/mypy
	$(BIN)/lint-imports

# The browser suite runs in its own pytest process: Playwright's sync API keeps an event
# loop running in the main thread, which would break asyncio tests run after it. The docs
# are built before it (a broken reference or a failing tutorial fails the build), and its
# tests read the built site. The other tests run in two processes (a file's tests stay
# together, so module fixtures are made once): most of their time is spent waiting on
# sockets, and a second order of the files keeps tests from leaning on each other.
test: lint
	$(BIN)/python -m pytest -m "not browser" -n 2 --dist loadfile
	$(MAKE) --no-print-directory docs
	bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -m browser tests/browser

# Everything but the browser suite (quicker while developing).
test-fast: lint
	$(BIN)/python -m pytest -m "not browser" -n 2 --dist loadfile

demo: venv
	$(BIN)/python -m nanobanana_widgets.demo

# The documentation site (docs/_build/html): API reference, concepts and the tutorials,
# executed against the offline emulator. Warnings are errors.
docs: venv
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache docs/_build
	find docs/tutorials -mindepth 1 -maxdepth 1 ! -name index.md ! -name .gitignore -exec rm -rf {} +
