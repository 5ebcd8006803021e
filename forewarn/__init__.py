"""forewarn package."""
