"""The router's corrections export read back as a labelled set (label = the final decision),
by the evaluation and by scripts/routing_accuracy.py --corrections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from services.router.domain import load_jurisdictions, load_rules
from services.router.domain.evaluation import evaluate, load_corrections

ROOT = Path(__file__).resolve().parents[3]
ITEM = {"case_id": "C1", "text": "楼上邻居每天深夜噪音扰民，多次沟通无果。",
        "channel": "hotline_12345", "kind": "return",
        "corrected_at": "2026-12-07T05:00:00+00:00", "corrected_by": "科员",
        "reason": "邻里噪音属司法所调处范围",
        "router": {"category": "neighbor", "risk": "blue", "tier": "village",
                   "lead_department": "village_mediation", "rules_fired": ["lead.village_tier"]},
        "final": {"category": "neighbor", "risk": "blue", "tier": "village",
                  "lead_department": "judicial_office", "cooperating_departments": []}}


def export(tmp_path: Path) -> Path:
    path = tmp_path / "corrections.json"
    path.write_text(json.dumps({"items": [ITEM], "next_cursor": None}, ensure_ascii=False),
                    encoding="utf-8")
    return path


def test_each_corrected_case_is_labelled_with_its_final_decision(tmp_path: Path) -> None:
    [labelled] = load_corrections(export(tmp_path))
    assert labelled.report.text == ITEM["text"]
    assert labelled.expect["lead_department"] == "judicial_office"
    assert labelled.expect["cooperating"] == []
    evaluation = evaluate([labelled], load_rules(ROOT / "services/router/rules/default.yaml"),
                          load_jurisdictions(ROOT / "services/router/data/jurisdictions.yaml"))
    # The rules still choose the village, which staff corrected: the set says so.
    assert evaluation.accuracy("category") == 1.0
    assert evaluation.accuracy("lead_department") == 0.0


def test_the_accuracy_script_shows_the_corrections_as_a_set(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "scripts/routing_accuracy.py", "--corrections",
                           str(export(tmp_path))], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    row = next(line for line in done.stdout.splitlines() if "corrections.json" in line)
    assert "0.0% 0/1" in row and "100.0% 1/1" in row
