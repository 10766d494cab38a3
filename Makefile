# lmsweb — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test lint format bench clean vnu chromium

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

# The browser tests drive Debian's Chromium (the path tests/browser/conftest.py checks).
# When it is missing and this machine allows it (root, apt-get), `make test` installs it,
# as .ci/run does; otherwise the browser tests are skipped with one reason (failed in CI).
# INSTALL_CHROMIUM=no never installs.
CHROMIUM := $(or $(CHROMIUM_PATH),$(shell command -v chromium),/usr/bin/chromium)
INSTALL_CHROMIUM ?= auto

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$(INSTALL_CHROMIUM)" != no ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "== installing Chromium (Debian package) for the browser tests"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	      || echo "== Chromium could not be installed: the browser tests will be skipped"; \
	  else \
	    echo "== no Chromium at $(CHROMIUM) (not installed here: that needs root and apt-get): the browser tests will be skipped"; \
	  fi; \
	fi

# The OpenID Connect provider the sign-in tests run (oauth2-mock-server from npm, on
# loopback), installed into tools/oidc when npm is present (the tests skip without it).
OIDC_PROVIDER := tools/oidc/node_modules/oauth2-mock-server/package.json
HAVE_NPM := $(shell command -v npm)

$(OIDC_PROVIDER): tests/oidc_support.py | $(VENV)/.installed-test
	$(BIN)/python -m tests.oidc_support && touch $@

test: $(VENV)/.installed-test $(if $(HAVE_JAVA_NPM),$(VNU_JAR)) $(if $(HAVE_NPM),$(OIDC_PROVIDER)) chromium
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
