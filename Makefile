# The README's two commands: `make run` and `make test`, on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install postgres-server bench bench-scale clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg setup.py
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tzxm db upgrade
	$(BIN)/tzxm seed-demo
	$(BIN)/tzxm deploy bpmn
	$(BIN)/tzxm serve

# The tests start their own PostgreSQL server; install Debian's when it is missing.
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL server (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

test: install postgres-server
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install postgres-server
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.sweep

bench-scale: install postgres-server
	$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) var .pytest_cache
