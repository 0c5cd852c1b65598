"""The committed reference run re-checks to its committed claims.csv exactly: any change to the
registry, the checker or the intervals shows up here and in a regenerated reference file
(`python -m suite claims results/0.1.0/cpu-20261129T172118Z --write`)."""
import io
from pathlib import Path

import pandas as pd
from pandas.testing import assert_frame_equal

from suite.cli import main
from suite.judge.claims import check_claims, load_registry
from suite.run.store import RunStore

RUN = Path(__file__).resolve().parent.parent / "results" / "0.1.0" / "cpu-20261129T172118Z"


def test_claims_of_the_reference_run_reproduce_the_committed_file():
    committed = pd.read_csv(RUN / "claims.csv")
    store = RunStore.open(RUN)
    claims = check_claims(store.runs(), store.manifest()["profile"], load_registry())
    assert_frame_equal(pd.read_csv(io.StringIO(claims.to_csv(index=False))), committed)
    # the reference run's intervals stay inside their metrics' ranges
    assert committed["high"].max() <= 1.0
    row = committed.set_index("claim_id").loc["T1-r05-126"]
    assert (row["verdict"], row["successes"], row["n_seeds"]) == ("INCONCLUSIVE", 1, 3)
    assert row["achievable"] == "1 of 3 seeds, exact 95% interval 1%-91%"


def test_the_claims_command_rechecks_without_rewriting(capsys):
    before = (RUN / "claims.csv").read_bytes()
    assert main(["claims", str(RUN)]) == 0
    assert (RUN / "claims.csv").read_bytes() == before
    assert "PASS 0, FAIL 1, INCONCLUSIVE 6, NOT-RUN 33" in capsys.readouterr().out
