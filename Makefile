# Image Corpus — the two commands are `make run` and `make test`.
# Everything downloaded or built for the local stack is cached under ~/.cache/image-corpus;
# runtime data lives in .stack/ (ignored).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=
BACKUP_REPO ?= $(HOME)/.local/share/image-corpus/backups

.PHONY: help venv stack browser stop stack-status run test test-unit backup bench bench-ingest bench-search bench-annotation bench-annotation-export bench-backup up down clean

help:
	@echo "make run           install, start the local stack and the three services (Ctrl-C stops the services)"
	@echo "make test          install, start the local stack, run every test"
	@echo "make stack         start MongoDB, Elasticsearch, MinIO and RabbitMQ on 127.0.0.1 (idempotent)"
	@echo "make stop          stop the local stack;  make stack-status: what runs where"
	@echo "make test-unit     unit tests only (no servers needed)"
	@echo "make backup        snapshot MongoDB and MinIO into BACKUP_REPO (corpus backup; docs/backup.md)"
	@echo "make bench         every benchmark (bench-ingest, bench-search, bench-annotation, bench-annotation-export, bench-backup)"
	@echo "make up / down     the same topology with Docker Compose (needs a Docker engine)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

stack: venv
	$(PY) deploy/local/stack.py up

stop:
	@if [ -x $(PY) ]; then $(PY) deploy/local/stack.py down; else $(PYTHON) deploy/local/stack.py down; fi

stack-status:
	@if [ -x $(PY) ]; then $(PY) deploy/local/stack.py status; else $(PYTHON) deploy/local/stack.py status; fi

run: stack
	$(PY) deploy/local/run_services.py

# The admin page's browser test drives Debian's Chromium (installed once with apt, like RabbitMQ).
browser: venv
	$(PY) deploy/local/stack.py browser

test: stack browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

backup: stack
	$(VENV)/bin/corpus backup create --repo $(BACKUP_REPO)

# Benchmarks print numbers beside a baseline measured in the same run; none asserts a time.
bench: bench-ingest bench-search bench-annotation bench-annotation-export bench-backup

bench-ingest: stack
	$(PY) -m benchmarks.ingest

bench-search: stack
	$(PY) -m benchmarks.search

bench-annotation: stack
	$(PY) -m benchmarks.annotation

bench-annotation-export: stack
	$(PY) -m benchmarks.annotation_export

bench-backup: stack
	$(PY) -m benchmarks.backup

up:
	docker compose up --build -d
	@echo "ingest http://localhost:8001  annotation http://localhost:8002  search http://localhost:8003"

down:
	docker compose down

clean: stop
	rm -rf .stack
