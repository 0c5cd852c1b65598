"""The harness: protocols, trainer, CLI. Composes `tasks` and `baselines`; they know nothing of it."""
__version__ = "0.1.0"
