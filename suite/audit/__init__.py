"""audit: controls and readings that test what a trained router's decisions are worth."""
