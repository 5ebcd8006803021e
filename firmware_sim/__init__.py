"""forewarn's device simulator: a fleet of products with injected faults and their ground truth.

:mod:`firmware_sim.fleet` builds devices from :mod:`firmware_sim.products` (one file per
product), injects :mod:`firmware_sim.faults` (one file per fault kind), adds the imperfections
of real fleets (:mod:`firmware_sim.imperfections`) and records what happened and when the
customer would have called (:mod:`firmware_sim.truth`, :mod:`firmware_sim.calls`). Randomness
comes from seeded ``numpy.random.Generator`` objects only. It raises no errors of its own.
"""
