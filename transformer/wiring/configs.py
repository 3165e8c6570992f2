"""The small frozen configs the layers below the root get, made from the settings."""

from __future__ import annotations

from transformer.analysis.analyzer import AnalysisConfig
from transformer.analysis.events import LifecycleSettings
from transformer.privacy import PrivacyPolicy
from transformer.protocol.sifis_schema import SifisConfig
from transformer.settings import TransformerSettings


def lifecycle(settings: TransformerSettings) -> LifecycleSettings:
    return LifecycleSettings(
        settings.event_min_hits, settings.event_within_hops, settings.event_max_not_heard_seconds
    )


def analysis_config(settings: TransformerSettings) -> AnalysisConfig:
    return AnalysisConfig(
        analyzer_id=settings.analyzer_id,
        top_k=settings.top_k,
        label_hop=settings.window_hop,
        detection_hop=settings.monitor_hop,
        gate_dbfs=settings.loudness_gate_dbfs,
        lifecycle=lifecycle(settings),
        max_upload_mb=settings.max_upload_mb,
        sudden_loud=settings.sudden_loud_settings() if settings.sudden_loud else None,
    )


def privacy_policy(settings: TransformerSettings) -> PrivacyPolicy:
    return PrivacyPolicy(
        settings.privacy_minimum, settings.privacy_enforcement, settings.scramble_segment_seconds
    )


def sifis_config(settings: TransformerSettings) -> SifisConfig:
    return SifisConfig(settings.top_k, settings.sifis_unknown_method, settings.max_upload_mb)


def service_parameters(settings: TransformerSettings) -> dict[str, object]:
    """What the model's metadata tells callers of its limits and privacy policy."""
    return {
        "privacy_minimum": settings.privacy_minimum,
        "privacy_enforcement": settings.privacy_enforcement,
        "max_upload_mb": settings.max_upload_mb,
        "decode_budget_hz": settings.decode_budget_hz,
        "max_audio_seconds": settings.max_audio_seconds,
        "top_k": settings.top_k,
    }


def start_summary(settings: TransformerSettings) -> str:
    """The start line's settings: ``VGGish on onnxruntime fp32, privacy minimum none``."""
    return (
        f"VGGish on {settings.vggish_runtime} {settings.vggish_precision}, "
        f"privacy minimum {settings.privacy_minimum}"
    )
