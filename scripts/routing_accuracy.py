"""Print the router's per-field accuracy on the worked examples, labelled and held-out reports.

    uv run python scripts/routing_accuracy.py [--rules FILE] [--jurisdictions FILE] [--wrong]
                                              [--time] [--corrections FILE ...]

Run it after editing a rules file: it shows what the edit did before the file ships.
`--corrections` adds the router's corrections export (GET /v1/routing/corrections, JSON) as
a labelled set: each case staff corrected, labelled with where it ended up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, without installing the project

from services.router.domain import load_jurisdictions, load_rules  # noqa: E402
from services.router.domain.evaluation import (  # noqa: E402
    FIELDS,
    Evaluation,
    LabelledReport,
    evaluate,
    load_corrections,
    load_labelled,
)
from services.router.domain.jurisdictions import JurisdictionTree  # noqa: E402
from services.router.domain.policy import route_case  # noqa: E402
from services.router.domain.rules import RoutingRules  # noqa: E402

SETS = {
    "worked examples": ROOT / "tests/data/routing_examples.yaml",
    "labelled reports": ROOT / "tests/data/labelled_reports.yaml",
    # Written after the labelled reports, each before the router changes it then prompted;
    # see docs/routing.md for what each number means.
    "held-out 1 (tuned on)": ROOT / "tests/data/heldout_reports.yaml",
    "held-out 2 (reds fixed)": ROOT / "tests/data/heldout_reports_2.yaml",
    "held-out 3 (reds fixed)": ROOT / "tests/data/heldout_reports_3.yaml",
    "held-out 4 (reds fixed)": ROOT / "tests/data/heldout_reports_4.yaml",
}
# A county's further held-out sets (heldout_reports_5.yaml ...) are shown by their name.
SETS |= {path.stem: path for path in sorted((ROOT / "tests/data").glob("heldout_reports*.yaml"))
         if path not in SETS.values()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=ROOT / "services/router/rules/default.yaml")
    parser.add_argument("--jurisdictions", default=ROOT / "services/router/data/jurisdictions.yaml")
    parser.add_argument("--wrong", action="store_true", help="list every report decided wrongly")
    parser.add_argument("--time", action="store_true",
                        help="also time route_case per report over every set")
    parser.add_argument("--corrections", action="append", default=[], type=Path,
                        metavar="FILE", help="a corrections export (JSON) as a labelled set "
                        "(label = the final decision); may be repeated")
    args = parser.parse_args()
    rules = load_rules(args.rules)
    tree = load_jurisdictions(args.jurisdictions)
    print(f"rules version {rules.version}\n")
    rows: list[tuple[str, Evaluation]] = []
    whole_sets: list[tuple[str, Evaluation]] = []
    everything: list[LabelledReport] = []
    sets = {name: (path, load_labelled) for name, path in SETS.items()}
    sets |= {f"corrections {path.name}": (path, load_corrections) for path in args.corrections}
    for name, (path, load) in sets.items():
        if not path.exists():
            if path in args.corrections:
                parser.error(f"no such file: {path}")
            continue
        labelled = load(path)
        everything.extend(labelled)
        evaluation = evaluate(labelled, rules, tree)
        rows.append((name, evaluation))
        whole_sets.append((name, evaluation))
        parts = {o.labelled.part for o in evaluation.outcomes}
        if len(parts) > 1:
            for part in sorted(parts, reverse=True):
                rows.append((f"  of which {part}", evaluation.part(part)))
    print(_table(rows))
    if args.time:
        print(_timing(everything, rules, tree))
    problems = 0
    for name, evaluation in whole_sets:
        for outcome in evaluation.missed_reds():
            problems += 1
            print(f"MISSED RED  {name}: {outcome.labelled.id} {outcome.labelled.report.text}")
        for outcome in evaluation.false_reds():
            problems += 1
            print(f"FALSE RED   {name}: {outcome.labelled.id} {outcome.labelled.report.text}")
        if args.wrong:
            for outcome in evaluation.wrong():
                fields = ", ".join(f"{f} {outcome.got(f)} (want {outcome.wanted(f)})"
                                   for f in outcome.wrong_fields())
                print(f"wrong       {name}: {outcome.labelled.id} {fields}\n"
                      f"            {outcome.labelled.report.text}")
    return 1 if problems else 0


def _timing(labelled: list[LabelledReport], rules: RoutingRules, tree: JurisdictionTree,
            rounds: int = 7) -> str:
    """Per-report time of route_case: the best of several rounds over every report."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in labelled:
            route_case(item.report, rules, tree, prior_related=item.prior_related)
        best = min(best, (time.perf_counter() - started) / len(labelled))
    return f"route_case: {best * 1e6:.0f} µs per report (best of {rounds} rounds over " \
           f"{len(labelled)} reports)\n"


def _table(rows: list[tuple[str, Evaluation]]) -> str:
    header = f"| {'set':<24} | {'reports':>7} | " + " | ".join(f"{f:>15}" for f in FIELDS) + " |"
    rule = "|" + "-" * 26 + "|" + "-" * 9 + "|" + "|".join("-" * 17 for _ in FIELDS) + "|"
    lines = [header, rule]
    for name, evaluation in rows:
        total = len(evaluation.outcomes)
        cells = " | ".join(
            f"{f'{evaluation.accuracy(f):.1%} {evaluation.correct(f)}/{total}':>15}"
            for f in FIELDS)
        lines.append(f"| {name:<24} | {total:>7} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
