"""Print the router's per-field accuracy on the worked examples and the labelled reports.

    uv run python scripts/routing_accuracy.py [--rules FILE] [--jurisdictions FILE] [--wrong]

Run it after editing a rules file: it shows what the edit did before the file ships.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, without installing the project

from services.router.domain import load_jurisdictions, load_rules  # noqa: E402
from services.router.domain.evaluation import (  # noqa: E402
    FIELDS,
    Evaluation,
    evaluate,
    load_labelled,
)

SETS = {
    "worked examples": ROOT / "tests/data/routing_examples.yaml",
    "labelled reports": ROOT / "tests/data/labelled_reports.yaml",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=ROOT / "services/router/rules/default.yaml")
    parser.add_argument("--jurisdictions", default=ROOT / "services/router/data/jurisdictions.yaml")
    parser.add_argument("--wrong", action="store_true", help="list every report decided wrongly")
    args = parser.parse_args()
    rules = load_rules(args.rules)
    tree = load_jurisdictions(args.jurisdictions)
    print(f"rules version {rules.version}\n")
    rows: list[tuple[str, Evaluation]] = []
    whole_sets: list[tuple[str, Evaluation]] = []
    for name, path in SETS.items():
        evaluation = evaluate(load_labelled(path), rules, tree)
        rows.append((name, evaluation))
        whole_sets.append((name, evaluation))
        parts = {o.labelled.part for o in evaluation.outcomes}
        if len(parts) > 1:
            for part in sorted(parts, reverse=True):
                rows.append((f"  of which {part}", evaluation.part(part)))
    print(_table(rows))
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
