"""Reports over the case database (``forewarn report …``)."""
