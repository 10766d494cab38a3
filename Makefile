# lmsweb — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test lint format bench clean vnu

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the project's dependencies changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/flask lms setup --host $(HOST) --port $(PORT)
	$(BIN)/flask lms serve --host $(HOST) --port $(PORT)

# The Nu HTML Checker (vnu-jar from npm, run with Java) for tests/test_html_validity.py;
# installed into tools/vnu when java and npm are present (the test skips without them).
VNU_JAR := tools/vnu/node_modules/vnu-jar/build/dist/vnu.jar
HAVE_JAVA_NPM := $(and $(shell command -v java),$(shell command -v npm))

$(VNU_JAR): tests/a11y_support.py | $(VENV)/.installed-test
	$(BIN)/python -m tests.a11y_support && touch $@

vnu: $(VNU_JAR)

test: $(VENV)/.installed-test $(if $(HAVE_JAVA_NPM),$(VNU_JAR))
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache tools
