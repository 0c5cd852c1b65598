"""`--until-decided`: after each round of cells, one more seed for every cell a claim still needs.

Three seeds cannot decide a claim and ten may be spent on one already decided, so seeds follow the
verdicts: a round adds the next seed to each cell whose claim reads INCONCLUSIVE and whose own
test is undecided (suite.judge.undecided), up to a budget of seeds per cell. The verdicts stay
valid however many rounds run: the test is anytime-valid. The added cells are written into the
run's manifest as grid blocks of its profile data, so a resume re-reads them as it reads any cell,
and the manifest's `until_decided` keeps the budget for the resume.
"""
from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict

from suite.errors import ConfigError
from suite.judge.claims import profile_decides
from suite.judge.registry import Claim
from suite.judge.undecided import CellKey, cell_key, undecided_cells
from suite.run.profiles import Cell, Profile, parse_profile
from suite.run.store import RunStore
from suite.schema.bounds import MAX_SEEDS


class Budget(BaseModel):
    """`max_seeds`: the budget of every faithful cell (the command line's); None: only blocks that
    set their own `max_seeds` are extended."""
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_seeds: int | None = None
    rounds: int = 0

    def of(self, cell: Cell) -> int | None:
        return self.max_seeds if self.max_seeds is not None else cell.max_seeds

    def active(self, profile: Profile) -> bool:
        return self.max_seeds is not None or any(c.max_seeds for c in profile.cells)


def budget_from(until_decided: bool, max_seeds: int | None, stored: dict | None) -> Budget:
    """The command line's budget, else the one a resumed run was started with."""
    if max_seeds is not None and not until_decided:
        raise ConfigError("--max-seeds: only with --until-decided")
    if until_decided:
        return Budget(max_seeds=max_seeds or MAX_SEEDS, rounds=(stored or {}).get("rounds", 0))
    return Budget(**stored) if stored else Budget()


def _selects(claim: Claim, key: CellKey) -> bool:
    task, distance, model, lam, protocol = key
    want = claim.select.columns()
    return (task in want["task"] and distance in want["distance"] and model in want["model"]
            and protocol in want["protocol"] and ("lambda_target" not in want or lam in want["lambda_target"]))


def groups(profile: Profile, registry: list[Claim], decides, budget: Budget) -> dict[CellKey, list[Cell]]:
    """The profile's faithful cells with a budget, by cell, where a claim these rows decide reads them."""
    out: dict[CellKey, list[Cell]] = {}
    for c in profile.cells:
        if not c.faithful_model or budget.of(c) is None:
            continue
        key = cell_key(c.task, c.distance, c.model, c.lambda_target, c.protocol)
        if any(cl.reading == "typical" and decides(cl) and _selects(cl, key) for cl in registry):
            out.setdefault(key, []).append(c)
    return out


def worst_case(profile: Profile, registry: list[Claim], budget: Budget) -> list[Cell]:
    """Every cell a run could still add: each extensible cell taken to its budget."""
    out = []
    for cells in groups(profile, registry, profile_decides(profile.to_dict()), budget).values():
        top = max(cells, key=lambda c: c.seed)
        out += [dataclasses.replace(top, seed=top.seed + i) for i in range(1, budget.of(top) - len(cells) + 1)]
    return out


def next_round(profile: Profile, runs, registry: list[Claim], budget: Budget) -> tuple[list[Cell], list[str]]:
    """The cells of the next round (one more seed per undecided cell with budget left) and the
    claims they are for."""
    decides = profile_decides(profile.to_dict())
    undecided = undecided_cells(runs, registry, decides)
    new, claims = [], set()
    for key, cells in groups(profile, registry, decides, budget).items():
        top = max(cells, key=lambda c: c.seed)
        if key in undecided and len(cells) < budget.of(top):
            new.append(dataclasses.replace(top, seed=top.seed + 1))
            claims.update(undecided[key])
    return new, sorted(claims)


def block_of(c: Cell) -> dict:
    block = {"label": c.label, "task": c.task, "task_params": dict(c.task_params), "distances": [c.distance],
             "models": [c.model], "seeds": [c.seed], "protocol": c.protocol, "model": dict(c.model_overrides)}
    if c.model == "routed":
        block["lambdas"] = [float(c.lambda_target)]
    if c.epoch_cap is not None:
        block["epoch_cap"] = c.epoch_cap
    if c.max_seeds is not None:
        block["max_seeds"] = c.max_seeds
    return block


def add_round(store: RunStore, profile: Profile, new: list[Cell], budget: Budget) -> tuple[Profile, Budget]:
    """The run's profile with `new` added, written to its manifest before any of them trains."""
    m = store.manifest()
    data = {**m["profile_data"], "grid": list(m["profile_data"]["grid"]) + [block_of(c) for c in new]}
    grown = parse_profile(data, profile.source)
    budget = budget.model_copy(update={"rounds": budget.rounds + 1})
    store.update_manifest(profile_data=data, cells=[c.describe() for c in grown.cells],
                          until_decided=budget.model_dump())
    return grown, budget
