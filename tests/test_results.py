"""Every committed run folder is complete for its kind, so no reader meets half a run.

reproduce/audit runs: runs.csv, claims.csv, REPORT.md (an audit run also AUDIT.md); regress runs:
regress.csv and REGRESS.md. The one exception is a run still training (status 'running'), and
only the newest run of its profile: a long campaign commits its finished cells as it goes, and
a stale unfinished run beside a newer one is exactly what this test exists to catch.
"""
import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results"
RUNS = sorted(p.parent for p in RESULTS.glob("*/*/manifest.json"))


def required(run: Path, manifest: dict) -> set[str]:
    name = manifest["profile"]["name"]
    if name.startswith("regress-"):
        return {"runs.csv", "regress.csv", "REGRESS.md"}
    need = {"runs.csv", "claims.csv", "REPORT.md"}
    return need | {"AUDIT.md"} if name == "audit" else need


def newest_of_profile(run: Path, name: str) -> bool:
    siblings = [p for p in RUNS if json.loads((p / "manifest.json").read_text())["profile"]["name"] == name]
    return run == max(siblings, key=lambda p: p.name.rsplit("-", 1)[-1])


def test_there_are_committed_runs():
    assert len(RUNS) >= 10


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_committed_run_is_complete_for_its_kind(run):
    manifest = json.loads((run / "manifest.json").read_text())
    status = manifest.get("status")
    if status == "running":
        assert newest_of_profile(run, manifest["profile"]["name"]), f"{run.name}: a stale unfinished run"
        return
    assert status == "complete", f"{run.name}: status {status!r}"
    missing = sorted(f for f in required(run, manifest) if not (run / f).is_file())
    assert not missing, f"{run.name} lacks {missing}"
