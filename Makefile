# spex-graph: two commands.
#   make demo   set up everything and run the main job on the embedded CPU model
#   make test   set up everything and run lint, type checks and the tests
# Both create .venv on first use and reuse it afterwards.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= 1.5b
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test venv lint typecheck pytest setup-model chromium clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

$(VENV)/.model-%: $(VENV)/.installed
	$(PIP) install -q -e '.[model-$*]'
	@touch $@

setup-model: $(VENV)/.model-$(MODEL)
	$(VENV)/bin/spex setup --model $(MODEL)

demo: setup-model
	$(PY) examples/demo.py --model $(MODEL)

lint: venv
	$(VENV)/bin/ruff check spex_graph tests examples integrations
	$(VENV)/bin/ruff format --check spex_graph tests examples integrations

typecheck: venv
	$(VENV)/bin/mypy spex_graph

# Headless Chromium renders `spex trace`'s HTML report in a test (Debian's package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } \
		|| { echo "make: the HTML report test needs chromium: apt-get install -y chromium"; exit 1; }

pytest: venv chromium
	$(MAKE) setup-model MODEL=0.5b
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
