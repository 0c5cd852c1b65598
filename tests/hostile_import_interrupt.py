"""A router plugin whose import raises KeyboardInterrupt, no Ctrl-C behind it (tests/test_plugin_faults.py)."""
raise KeyboardInterrupt
