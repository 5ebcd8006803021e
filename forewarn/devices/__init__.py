"""Device identity and lifecycle, the operator's side: broker credentials (:mod:`.passwords`)."""
