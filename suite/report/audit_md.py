"""AUDIT.md from an AuditFindings record: headings, the verdict line, paragraphs, bullets, tables
and figure links. It formats what the record says and decides nothing."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.audit.findings import AuditFindings, Figures, Finding, Section, Table
from suite.report.markdown import md_table

MINI_NOTE = "Mini-tier rows (d=32, 2 layers) illustrate; they decide no published claim."


def table_md(t: Table) -> str:
    df = pd.DataFrame(t.rows, columns=t.columns)
    return md_table(df, floatfmt=t.floatfmt, disable_numparse=not t.numparse)


def figures_md(f: Figures) -> list[str]:
    """The caption, then a link per drawn PNG, or the record's words for nothing drawn."""
    png = [Path(p).name for p in f.files if str(p).endswith(".png")]
    body = "\n\n".join(f"![{f.alt}](figures/{name})" for name in png) if png else f.missing
    return [b for b in (f.caption, body) if b]


def blocks(intro, lines, table_note, table, after, figures) -> list[str]:
    """Paragraphs of one part, in order, each followed by a blank line when joined."""
    out = list(intro)
    if lines:
        out.append("\n".join(f"- {line}" for line in lines))
    if table is not None:
        out += [table_note] if table_note else []
        out.append(table_md(table))
        out += [f"Note: {table.note}"] if table.note else []
    out += list(after)
    for f in figures:
        out += figures_md(f)
    return out


def finding_md(f: Finding) -> list[str]:
    return [f"## {f.point}. {f.title}", f"**Verdict: {f.summary}**",
            *blocks(f.intro, f.lines, f.table_note, f.table, [], f.figures)]


def section_md(s: Section) -> list[str]:
    return [f"## {s.title}", *blocks(s.intro, s.lines, "", s.table, s.after, s.figures)]


def render(a: AuditFindings) -> str:
    sources = "; ".join(f"{s.key}: " + (f"`{s.run_id}` ({s.status}, {s.cells} cells)" if s.run_id else "not run")
                        for s in a.sources)
    head = [f"# Audit: {a.run_id}",
            f"Suite {a.suite_version}, profile `{a.profile}` (status {a.status}), git {a.git_sha}, device {a.device}.\n"
            f"Sources: {sources}.\n{MINI_NOTE}"]
    parts = head + [p for f in a.points for p in finding_md(f)] + [p for s in a.sections for p in section_md(s)]
    files = ", ".join(f"`{name}`" + (f" ({what})" if what else "") for name, what in a.files.items())
    parts += ["## Files", f"{files}."]
    return "\n\n".join(parts) + "\n"
