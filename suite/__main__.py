"""`python -m suite`: the entry point guards its own imports. A Python without the suite's
dependencies must exit 3 (the suite failed) with one line, never 1, which regress means WORSE."""
import sys


def _start() -> int:
    try:
        from suite.cli import main
    except Exception as e:  # ImportError of a dependency, or a broken install: not a verdict
        print(f"error: the suite cannot start ({type(e).__name__}: {' '.join(str(e).split())[:300]}); "
              f"install its dependencies (pip install -e .) (exit 3)", file=sys.stderr)
        return 3
    return main()


sys.exit(_start())
