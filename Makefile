# Red Steward. `make run` serves the sandbox; `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export REDSTEWARD_APP_PUBLIC_URL ?= http://127.0.0.1:$(PORT)

.PHONY: install run test bench bench-park clean migration

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# The Open311 tests use the georeport client; it caps xmltodict below 0.15, wechatpy's
	# pin is 1.0.4, and georeport only calls xmltodict.parse: install it without its pins.
	$(BIN)/pip install -q --no-deps georeport==0.3.1
	touch $@

install: $(BIN)/.installed

# One scheduler runs beside the server and stops with it (a second `make run` only stands by).
run: install
	$(BIN)/flask --app wsgi serve-setup
	$(BIN)/flask --app wsgi scheduler run & sched=$$!; trap 'kill $$sched 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app wsgi run --host 127.0.0.1 --port $(PORT) --no-reload

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The webhook under wrk beside the anchors, memory per worker, the outbox (BENCH_SECONDS=10 per run).
bench: install
	$(BIN)/python bench/run.py

# Scheduler scans, digest, dashboard and assessment over a generated park (BENCH_PARK requests).
BENCH_PARK ?= 1000000
bench-park: install
	$(BIN)/python -m bot.console.bench $(BENCH_PARK)

clean:
	rm -rf $(VENV) instance .pytest_cache

# Regenerate the schema migration after a model change (pre-release: one initial revision).
# 0002 (PostgreSQL full-text indexes) and 0003 (re-segmented search words), written by hand, are
# set aside while 0001 is regenerated.
migration: install
	rm -f migrations/versions/0001_initial_schema.py instance/migration-gen.sqlite3
	mkdir -p instance && mv migrations/versions/000[2-9]_*.py instance/
	$(BIN)/python -c "from bot.cli import alembic_config; from alembic import command; \
	command.revision(alembic_config('sqlite:///instance/migration-gen.sqlite3'), message='initial schema', autogenerate=True, rev_id='0001')"
	rm -f instance/migration-gen.sqlite3*
	mv instance/000[2-9]_*.py migrations/versions/
