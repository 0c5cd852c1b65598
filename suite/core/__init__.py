"""The bottom layer: file writes that never leave a part behind. Imports nothing of the suite."""
