"""The active routing rules and jurisdiction tree, reloaded when their files change.

A county edits services/router/rules/default.yaml (or the file FQ_ROUTING_RULES_PATH names);
the next decision uses the new version. A file that fails validation is refused with its
errors logged, and the previous version stays active.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from services.router.domain.datafile import DataFileError
from services.router.domain.jurisdictions import JurisdictionTree, load_jurisdictions
from services.router.domain.reader import default_reader
from services.router.domain.rules import RoutingRules, load_rules

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
DEFAULT_RULES = HERE / "rules" / "default.yaml"
DEFAULT_JURISDICTIONS = HERE / "data" / "jurisdictions.yaml"
CHECK_EVERY_SECONDS = 1.0


@dataclass
class _Loaded:
    rules: RoutingRules
    tree: JurisdictionTree
    stamp: tuple[float, float]
    loaded_at: float


class Rulebook:
    def __init__(self, rules_path: Path | None = None, jurisdictions_path: Path | None = None
                 ) -> None:
        self.rules_path = rules_path or DEFAULT_RULES
        self.jurisdictions_path = jurisdictions_path or DEFAULT_JURISDICTIONS
        self._current = self._load()
        # The learned second reader (domain/reader.py) ships with the code: load it now, at
        # start, rather than on the first report.
        default_reader()
        self._checked = time.monotonic()
        self.last_error: str | None = None

    def _stamp(self) -> tuple[float, float]:
        return (self.rules_path.stat().st_mtime, self.jurisdictions_path.stat().st_mtime)

    def _load(self) -> _Loaded:
        stamp = self._stamp()
        return _Loaded(load_rules(self.rules_path), load_jurisdictions(self.jurisdictions_path),
                       stamp, time.time())

    def reload(self) -> str | None:
        """Load the files now; returns the error text and keeps the old version on failure."""
        try:
            self._current = self._load()
            self.last_error = None
            log.info("routing rules loaded", extra={"version": self._current.rules.version})
        except (DataFileError, OSError) as exc:
            self.last_error = str(exc)
            log.error("routing rules refused; keeping the active version",
                      extra={"error": str(exc)[:2000]})
        return self.last_error

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_SECONDS:
            return
        self._checked = now
        try:
            stamp = self._stamp()
        except OSError:
            return
        if stamp != self._current.stamp:
            self.reload()
            if self.last_error:
                # Do not retry a bad file on every decision: wait until it changes again.
                self._current.stamp = stamp

    @property
    def rules(self) -> RoutingRules:
        self._maybe_reload()
        return self._current.rules

    @property
    def tree(self) -> JurisdictionTree:
        self._maybe_reload()
        return self._current.tree

    @property
    def loaded_at(self) -> float:
        return self._current.loaded_at
