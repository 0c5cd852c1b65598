"""A router plugin whose import calls sys.exit(0) (tests/test_plugin_faults.py)."""
import sys

sys.exit(0)
