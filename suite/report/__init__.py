"""Prose and figures from typed records: nothing here computes a finding."""
