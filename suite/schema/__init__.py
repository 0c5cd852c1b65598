"""Typed records shared by every part of the suite: limits on inputs, the run row, the published values."""
