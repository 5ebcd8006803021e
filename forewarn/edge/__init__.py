"""``forewarn edge run``: one edge agent for a real device (:mod:`forewarn.fleet` runs many).

::

    settings.py  edge.toml: [broker], [batching], [queue], [source] (EdgeSettings)
    sources.py   where samples come from: sim, callable or command (build_source)
    run.py       settings → disk queue → batcher → agent → uplink, fed by a source (run_agent)
"""

from __future__ import annotations

from forewarn.edge.run import AgentRun, broker_config, new_boot_id, open_agent, run_agent
from forewarn.edge.settings import (
    BatchingSection,
    BrokerSection,
    EdgeSettings,
    QueueSection,
    SourceSection,
    TlsSection,
    load_edge_settings,
)
from forewarn.edge.sources import (
    CallableSource,
    CommandSource,
    SampleSource,
    SimSource,
    build_source,
)

__all__ = [
    "AgentRun",
    "BatchingSection",
    "BrokerSection",
    "CallableSource",
    "CommandSource",
    "EdgeSettings",
    "QueueSection",
    "SampleSource",
    "SimSource",
    "SourceSection",
    "TlsSection",
    "broker_config",
    "build_source",
    "load_edge_settings",
    "new_boot_id",
    "open_agent",
    "run_agent",
]
