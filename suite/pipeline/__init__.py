"""Composed jobs: train a profile into a run folder, then judge and report it."""
