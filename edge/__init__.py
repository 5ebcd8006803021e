"""forewarn's device side: sample, batch, queue on disk, publish over MQTT; and the message schema.

Everything above imports the wire format from :mod:`edge.schema` (topics, payloads, the
telemetry batch) and the shared helpers :mod:`edge.backoff` (full-jitter retry delays),
:mod:`edge.names` (the name pattern) and :mod:`edge.problems` (validation errors in words).
The agent is :mod:`edge.agent` over :mod:`edge.batcher`, the crash-safe :mod:`edge.queue` and
:mod:`edge.uplink`. See docs/edge.md.

Errors (:mod:`edge.errors`)::

    EdgeError           anything edge raises on purpose
    ├── PublishError    the broker did not take a message (not connected, timed out)
    ├── TopicError      a topic that does not follow the forewarn layout (also a ValueError)
    └── PayloadError    a payload whose encoding is unknown, corrupt or too large (also a
                        ValueError)
"""
