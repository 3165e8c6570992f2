"""The composition root: the transformer's settings become its collaborators, here only.

The served model (``transformer.model``), the offline classifier (``audioguard.offline``)
and the local monitor (``audioguard.monitor``) build what they run with these functions, so
the three run the same analysis, privacy policy, lifecycle and detection. Below this module
no code reads ``TransformerSettings``: each piece gets a small frozen config
(``AnalysisConfig``, ``PrivacyPolicy``, ``LifecycleSettings``, ``SifisConfig``) or plain
arguments. An import contract (``pyproject.toml``) holds the rule.

configs.py      the small frozen configs (analysis, privacy policy, lifecycle, SIFIS, metadata)
services.py     the request side: embedder, analysis, delivery, DHT listener, admission
listening.py    the sources (checked before any model loads) and the monitor
transformer.py  the served transformer's pieces, built and connected
"""

from transformer.wiring.configs import (
    analysis_config,
    lifecycle,
    privacy_policy,
    service_parameters,
    sifis_config,
    start_summary,
)
from transformer.wiring.listening import Listening, listening, monitor_service, source_privacy
from transformer.wiring.services import (
    admission,
    analyzer,
    delivery_service,
    embedding_pipeline,
    embedding_worker,
    request_listener,
)
from transformer.wiring.transformer import TransformerParts, transformer_parts

__all__ = [
    "Listening",
    "TransformerParts",
    "admission",
    "analysis_config",
    "analyzer",
    "delivery_service",
    "embedding_pipeline",
    "embedding_worker",
    "lifecycle",
    "listening",
    "monitor_service",
    "privacy_policy",
    "request_listener",
    "service_parameters",
    "sifis_config",
    "source_privacy",
    "start_summary",
    "transformer_parts",
]
