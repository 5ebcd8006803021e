"""forewarn's core service: telemetry in over MQTT or NATS, anomaly scores and events out.

Wired in :mod:`core.service` (ingest → decode → detect → store → events); the detectors live one
per file in :mod:`core.detect`, the time-series stores in :mod:`core.store`, the partitioned
NATS engine in :mod:`core.nats`. See docs/detection.md, docs/store.md and docs/scaling.md.

Errors (:mod:`core.errors`)::

    CoreError                   anything core raises on purpose
    ├── LimitsFileError         a product limits file is unreadable or invalid
    ├── DecodeError             one payload could not be used (dead-lettered, never raised out)
    └── StoreError              the store could not take or give data (try again later)
        └── StoreRejectedError  the store refused the data for good
"""
