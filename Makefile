# The only commands a person needs: `make run` and `make test`.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=

.PHONY: run test install uv system-deps lint typecheck contracts bench chaos chaos-sqlite clean help

help:
	@echo "make run    start the whole platform (Tansu + SQLite + four services + workbench)"
	@echo "make test   install what is missing and run every check and test"

uv:
	@command -v $(UV) >/dev/null 2>&1 || { echo "installing uv with pip"; \
		python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --break-system-packages uv; }

install: uv
	@$(UV) sync --frozen --quiet

# promtool (Debian's prometheus package) checks the alert rules and dashboard queries;
# postgresql-client brings pg_dump/pg_restore for backups on PostgreSQL.
# Debian's chromium runs the workbench's browser tests (Playwright never downloads a browser
# here), with a CJK font so their screenshots read.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium (for the workbench's browser tests)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends chromium fonts-wqy-microhei >/dev/null) \
			|| echo "warning: could not install chromium; browser tests will skip (fail under CI)"; \
		else echo "warning: chromium missing and cannot apt-get; browser tests will skip (fail under CI)"; fi; \
	fi
	@if ! command -v promtool >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's prometheus (for promtool)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends prometheus >/dev/null) \
			|| echo "warning: could not install prometheus; promtool tests will skip"; \
		else echo "warning: promtool missing and cannot apt-get; promtool tests will skip"; fi; \
	fi
	@# pg_dump and pg_restore: `fengqiao backup/restore` on PostgreSQL and the restore drill.
	@if ! command -v pg_dump >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's postgresql-client (for pg_dump, pg_restore)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends postgresql-client >/dev/null) \
			|| echo "warning: could not install postgresql-client; the PostgreSQL restore drill will fail"; \
		else echo "warning: pg_dump missing and cannot apt-get; the PostgreSQL restore drill will fail"; fi; \
	fi

run: install
	@$(UV) run fengqiao run

lint: install
	@$(UV) run ruff check .
	@$(UV) run mypy

contracts: install
	@$(UV) run python -m contracts.generate

# Every test on PostgreSQL (SQLite where no server answers, except under CI=true), then the
# ones marked both_backends (outbox, relay, consumers, the flows, `make run`, the chaos short
# form) again on the embedded default's SQLite.
test: install system-deps lint
	@$(UV) run pytest $(PYTEST_ARGS)
	@echo "--- again on SQLite, the embedded default: tests marked both_backends"
	@FQ_TEST_BACKEND=sqlite $(UV) run pytest -m both_backends $(PYTEST_ARGS)

# Benchmarks print tables and, last, one JSON line each (see docs/performance.md).
bench: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@$(UV) run python -m bench.webhook_posting --posts 5000 --rounds 2
	@for db in postgres sqlite; do \
		$(UV) run python -m bench.router --db $$db --cases 20000 || exit 1; \
		$(UV) run python -m bench.consumers --db $$db --stage mediation --cases 5000 || exit 1; \
		$(UV) run python -m bench.consumers --db $$db --stage notify --cases 5000 || exit 1; \
		$(UV) run python -m bench.sender --db $$db --deliveries 4000 \
			--processes $$([ $$db = postgres ] && echo 1 2 || echo 1) || exit 1; \
		$(UV) run python -m bench.intake_http --db $$db --seconds 10 || exit 1; \
		$(UV) run python -m bench.pipeline --db $$db --rate 500 --seconds 10 --cases 6000 \
			|| exit 1; \
		$(UV) run python -m bench.data_scale --db $$db --max-cases 100000 || exit 1; \
	done
	@# Past one process (part 3 of docs/performance.md).
	@$(UV) run python -m bench.router --db postgres --cases 20000 --processes 2
	@$(UV) run python -m bench.consumers --db postgres --stage mediation --cases 5000 --processes 2
	@$(UV) run python -m bench.consumers --db postgres --stage notify --cases 5000 --processes 2
	@# The database's part of each read at a size, written by PostgreSQL, then the APIs timed
	@# on the same cases; the database dropped after (1,000,000 is the figure in the docs:
	@# `--cases 1000000`, minutes more).
	@$(UV) run python -m bench.plans_at_scale --cases 200000 --repeat 3 --time-ordered \
		--database fq_bench_scale \
		&& $(UV) run python -m bench.data_scale --seeded fq_bench_scale; status=$$?; \
		$(UV) run python -c "import asyncio; from tests.infra import drop_pg_database; \
			asyncio.run(drop_pg_database('fq_bench_scale'))"; exit $$status

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# The fault-injection suite, full run (docs/reliability.md): 10,000 cases, 20 faults; needs a
# local PostgreSQL it may restart. tests/e2e/test_chaos.py is its short form in `make test`.
CHAOS_ARGS ?=
chaos: install
	@$(UV) run python -m chaos.run --cases 10000 --faults 20 $(CHAOS_ARGS)

# The same on the embedded default: a SQLite file per service, one process each.
chaos-sqlite: install
	@$(UV) run python -m chaos.run --sqlite --cases 10000 --faults 20 $(CHAOS_ARGS)
