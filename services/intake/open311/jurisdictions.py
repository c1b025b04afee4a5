"""Open311's jurisdiction_id: the county's own division codes. The endpoint serves one
county, so jurisdiction_id is optional; when sent it must be the county's code or one of
its towns' or villages' (the tree the router routes by, FQ_JURISDICTIONS_PATH, by default
services/router/data/jurisdictions.yaml), and a request filed with a town or village code
carries it to the router as the case's region code."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# The router's sample county, read as data: intake shares the file, not the router's code.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "router" / "data" / "jurisdictions.yaml"


@dataclass(frozen=True)
class Jurisdictions:
    county: str
    codes: frozenset[str]

    def __contains__(self, code: object) -> bool:
        return code in self.codes


def _codes(tree: dict[str, Any]) -> frozenset[str]:
    codes = {str(tree["county"]["code"])}
    for town in tree.get("towns") or []:
        codes.add(str(town["code"]))
        codes.update(str(village["code"]) for village in town.get("villages") or [])
    return frozenset(codes)


@lru_cache(maxsize=4)
def load(path: Path | None = None) -> Jurisdictions:
    """The county's code and every code a jurisdiction_id may be (read once per path)."""
    tree = yaml.safe_load((path or DEFAULT_PATH).read_text(encoding="utf-8"))
    return Jurisdictions(county=str(tree["county"]["code"]), codes=_codes(tree))
