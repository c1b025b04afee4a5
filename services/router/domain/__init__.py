"""The router's pure domain: text understanding, the rules file, the jurisdiction tree, and
the routing decision. No I/O beyond reading the two data files when asked to."""

from services.router.domain.jurisdictions import (
    Jurisdiction,
    JurisdictionsError,
    JurisdictionTree,
    Level,
    Location,
    load_jurisdictions,
    parse_jurisdictions,
)
from services.router.domain.policy import route_case
from services.router.domain.rules import RoutingRules, RulesError, load_rules, parse_rules

__all__ = [
    "Jurisdiction",
    "JurisdictionTree",
    "JurisdictionsError",
    "Level",
    "Location",
    "RoutingRules",
    "RulesError",
    "load_jurisdictions",
    "load_rules",
    "parse_jurisdictions",
    "parse_rules",
    "route_case",
]
