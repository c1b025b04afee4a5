"""The fault-injection suite: a stream of cases through the four services, run as separate
processes on a real broker and a real PostgreSQL, while services are killed, the broker and
the database restart and consumer groups rebalance; then a count of what arrived where.
Run it with `make chaos`, or `uv run python -m chaos.run --help`."""
