"""The reference values the figures draw beside a run's own numbers (the published main table, the
headline claim's thresholds), read when a figure is drawn, never at import: a caller may pass its
own cells or claims (a --claims-file), and importing the figures reads no file."""
from __future__ import annotations

from suite.errors import ConfigError
from suite.judge.published import PublishedCell, key, load_published
from suite.judge.registry import Claim, load_registry

#: the publicised savings (claims H-savings-*): 1 - published usage of these (distances, lambda)
HEADLINE_SAVINGS = (((126,), 0.5), ((254, 510), 0.1))
#: the headline claim: Routed λ→0.5 at d=126, "0.3% attention usage = 99.7% compute savings"
HEADLINE_CLAIM = "T1-r05-126"


def published_points(cells: dict[tuple, PublishedCell] | None = None) -> dict:
    """(distance, series key) -> (accuracy, usage or None), from suite/data/published.csv."""
    cells = load_published() if cells is None else cells
    return {(d, (model, lam)): (c.accuracy, c.usage) for (d, model, lam), c in cells.items()}


def published_savings(cells: dict[tuple, PublishedCell] | None = None) -> list[tuple[float, str]]:
    """(saving, legend label) of each publicised headline saving, from the published usage."""
    cells = load_published() if cells is None else cells
    out = []
    for distances, lam in HEADLINE_SAVINGS:
        saved = {round(1.0 - cells[key(d, "routed", lam)].usage, 6) for d in distances}
        if len(saved) != 1:
            raise ConfigError(f"published values: usage of Routed λ→{lam:g} differs over d={distances}")
        where = f"d={distances[0]}, λ→{lam:g}" if len(distances) == 1 else f"d={', '.join(map(str, distances))}"
        value = saved.pop()
        out.append((value, f"published {100 * value:g}% ({where})"))
    return out


def headline_saving(cells: dict[tuple, PublishedCell] | None = None) -> float:
    """The headline's publicised saving: 1 - published usage of Routed λ→0.5 at d=126."""
    cells = load_published() if cells is None else cells
    return 1.0 - cells[key(126, "routed", 0.5)].usage


def headline_thresholds(claims: list[Claim] | None = None) -> tuple[float, float]:
    """(accuracy, usage) thresholds of the headline claim, as the claims registry states them."""
    claims = load_registry() if claims is None else claims
    found = [c for c in claims if c.id == HEADLINE_CLAIM]
    if not found:
        raise ConfigError(f"claims file: no claim '{HEADLINE_CLAIM}' (the audit figures draw its thresholds)")
    checks = {c.metric: c.threshold for c in found[0].checks}
    return checks["accuracy"], checks["usage"]
