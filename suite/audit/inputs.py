"""What the audit reads: its own run's tables and the newest run of each source profile, gathered
once into one record that the findings and the figures both read."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from suite.audit.analysis import ANALYSIS, CONTROLS
from suite.audit.common import LEARNED, router_of
from suite.audit.regret import regret
from suite.run.store import ROUTING, RunStore
from suite.schema.rows import ok_rows

#: the other runs the audit reads, by profile name
SOURCES = {"headline": "headline", "curriculum": "curriculum", "battery": "battery-mini", "mqar": "mqar-mini",
           "swaps": "swaps-faithful", "mqar-learnable": "mqar-learnable", "mqar-controls": "mqar-controls",
           "faithful-254": "faithful-254", "faithful-510": "faithful-510"}
#: the faithful campaign's runs at 254 and 510: their routed cells' per-layer usage joins point 2
#: (read from runs.csv, no training); their models are not analysed (swaps) by the audit yet
FAITHFUL_SOURCES = ("faithful-254", "faithful-510")
#: the sources whose cells join the audit's own (swaps, routing analysis, regret, maps)
SWAP_SOURCES = ("battery", "mqar", "swaps", "mqar-learnable", "mqar-controls")


def newest_run(results_dir: Path, profile: str) -> RunStore | None:
    """The newest complete run of a profile, else the newest unfinished one (partial data is still
    data; the paragraph that reads it says how many cells it holds)."""
    for complete in (True, False):
        runs = RunStore.of_profile(results_dir, profile, complete=complete)
        if runs:
            return runs[0]
    return None


def headline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    r = ok_rows(runs)
    if r.empty:
        return r
    return r[(r["model"] == "routed") & (r["task"] == "assoc_recall") & (r["distance"] == 126)
             & (r["protocol"] == "faithful") & (r["lambda_target"] == 0.5)].sort_values("seed")


def baseline_rows(source: RunStore | None) -> pd.DataFrame:
    """A run's AttnOnly and ConvOnly cells (the headline's join the faithful Pareto figure)."""
    r = ok_rows(source.runs()) if source is not None else pd.DataFrame()
    return r[r["model"].isin(("attn", "conv"))] if len(r) else r


class MapGroup(BaseModel):
    """One routing-map figure to draw: the stored rates of one group of cells, and the cells."""
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    routing: pd.DataFrame
    runs: pd.DataFrame


class AuditInputs(BaseModel):
    """The audit run's tables and its sources' rows, read once."""
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    store: RunStore
    found: dict[str, RunStore | None]
    headline: pd.DataFrame
    controls: pd.DataFrame
    analysis: pd.DataFrame
    #: every cell of the audit run and of the swap sources, once per config hash
    runs: pd.DataFrame
    #: the regret table (regret.csv)
    table: pd.DataFrame

    @property
    def headline_store(self) -> RunStore | None:
        return self.found["headline"]

    @property
    def swapped(self) -> list[RunStore]:
        return [self.found[k] for k in SWAP_SOURCES if self.found.get(k) is not None]

    def faithful_routed(self) -> pd.DataFrame:
        """The finished routed cells of the faithful campaign's runs at 254 and 510, every protocol."""
        rows = [ok_rows(self.found[k].runs()) for k in FAITHFUL_SOURCES if self.found.get(k) is not None]
        r = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        return r[r["model"] == "routed"] if len(r) else r

    def pareto_runs(self) -> pd.DataFrame:
        """The cells of the Pareto figures: the audit's and the headline run's baselines."""
        return pd.concat([self.runs, baseline_rows(self.headline_store)], ignore_index=True)

    def headline_analysed(self) -> pd.DataFrame:
        """The routing analysis of the headline's own cells."""
        a, h = self.analysis, self.headline
        if not (len(a) and len(h)):
            return pd.DataFrame()
        return a[a["config_hash"].isin(set(h["config_hash"])) & a["run_id"].isin(set(h["run_id"]))]

    def mini_routed(self) -> pd.DataFrame:
        r = ok_rows(self.runs)
        return r[(r["model"] == "routed") & (r["tier"] == "mini")] if len(r) else r

    def map_groups(self) -> list[MapGroup]:
        """One routing map per (run, task, distance, lambda) group of learned-router cells: every seed."""
        out = []
        for source in [self.store, *self.swapped]:
            runs, routing = ok_rows(source.runs()), source.table(ROUTING)
            if runs.empty or routing.empty:
                continue
            learned = pd.Series([router_of(x) in LEARNED for x in runs.to_dict("records")], index=runs.index)
            runs = runs[(runs["model"] == "routed") & learned]
            for (task, d, lam), g in runs.groupby(["task", "distance", "lambda_target"]):
                r = routing[routing["config_hash"].isin(set(g["config_hash"]))]
                stem = f"audit_maps_{source.manifest()['profile']['name']}_{task}_{int(d)}_l{lam:g}"
                out.append(MapGroup(name=stem, routing=r, runs=g))
        return out

    def headline_maps(self) -> MapGroup | None:
        if self.headline_store is None:
            return None
        hr = self.headline_store.table(ROUTING)
        if hr.empty:
            return None
        return MapGroup(name="audit_routing_maps_headline", runs=self.headline,
                        routing=hr[hr["config_hash"].isin(set(self.headline["config_hash"]))])


def gather(store: RunStore, results_dir: Path) -> AuditInputs:
    found = {k: newest_run(results_dir, p) for k, p in SOURCES.items()}
    headline = headline_rows(found["headline"].runs()) if found["headline"] else pd.DataFrame()
    controls = store.table(CONTROLS)
    swapped = [found[k] for k in SWAP_SOURCES if found[k] is not None]
    runs = pd.concat([s.runs() for s in [store, *swapped]], ignore_index=True)
    runs = runs.drop_duplicates("config_hash") if len(runs) else runs
    return AuditInputs(store=store, found=found, headline=headline, controls=controls,
                       analysis=store.table(ANALYSIS), runs=runs, table=regret(controls, runs))
