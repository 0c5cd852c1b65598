"""Prose: REPORT.md, REGRESS.md, AUDIT.md rendered from typed records."""
