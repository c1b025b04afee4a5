"""Which database errors a client may simply retry (503 with Retry-After) and which are a
real error (500): a deadlock's victim and a serialization failure are the first kind, as
a restart is; a constraint violation is the second."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from kit.errors import database_unavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT … FOR UPDATE", {}, DriverError(sqlstate))


def test_a_deadlock_or_a_serialization_failure_is_worth_a_retry() -> None:
    assert database_unavailable(wrapped("40P01"))  # deadlock detected
    assert database_unavailable(wrapped("40001"))  # could not serialize access
    assert database_unavailable(wrapped("57P01"))  # admin shutdown


def test_a_constraint_violation_is_not() -> None:
    assert not database_unavailable(wrapped("23505"))  # unique violation
    assert not database_unavailable(wrapped("42P01"))  # undefined table
