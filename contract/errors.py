"""One error hierarchy for both services; every error carries its HTTP status.

Messages are written for the caller: they name the problem and, where it helps,
the limit or the fix. They never contain request payload bytes.
"""


class AudioGuardError(Exception):
    """Base class. ``status_code`` is the HTTP status the services answer with."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- 4xx: the caller can fix these -------------------------------------------------


class InvalidInput(AudioGuardError):
    """The request is malformed or its values are out of range (400)."""

    status_code = 400


class InvalidParameter(InvalidInput):
    """A request parameter has the wrong type or an out-of-range value (400)."""


class EmptyAudio(InvalidInput):
    """The request carried no audio bytes at all (400)."""


class UndecodableAudio(InvalidInput):
    """The bytes are not an audio file libsndfile can read (400)."""


class AudioTooShort(InvalidInput):
    """Fewer samples than one 0.975 s VGGish example (400); zero-length audio too."""


class NonFiniteAudio(InvalidInput):
    """The decoded samples contain NaN or infinity (400)."""


class StartTimeOutOfRange(InvalidInput):
    """``start_time`` is negative or lies beyond the last example of the clip (400)."""


class RequestTooLarge(AudioGuardError):
    """A request body above the configured maximum (413)."""

    status_code = 413


class AudioTooLarge(RequestTooLarge):
    """Upload or duration above the configured maximum (413)."""


def upload_too_large(max_upload_mb: float) -> AudioTooLarge:
    """The 413 of every path (v2 REST, v2 gRPC, SIFIS, listener), naming the configured limit."""
    return AudioTooLarge(
        f"the audio upload exceeds the {max_upload_mb:g} MiB limit (max_upload_mb / AUDIOGUARD_MAX_UPLOAD_MB)"
    )


class PrivacyPolicyViolation(AudioGuardError):
    """The request asks for less privacy than the operator's minimum (403)."""

    status_code = 403


# --- 5xx: the service or its environment is at fault -------------------------------


class ServiceNotReady(AudioGuardError):
    """Weights not loaded yet, or the predictor is unreachable (503; with ``Retry-After`` when
    ``retry_after_seconds`` is known)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceFault(AudioGuardError):
    """A part of the service failed: a bug, or a dependency answering nonsense (500, gRPC INTERNAL).

    Never a client's mistake (those are 4xx) nor an outage (503).
    """

    status_code = 500


class Overloaded(ServiceNotReady):
    """At capacity: the request was not started (503 with Retry-After; gRPC UNAVAILABLE)."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds)


class ModelAssetError(AudioGuardError):
    """A model file is missing, unreadable or has an unexpected layout (500 at load)."""

    status_code = 500


class MissingModelAsset(ModelAssetError):
    """A required official asset file is absent from the model directory."""


class ModelLayoutMismatch(ModelAssetError):
    """A weight file's architecture or variable shapes do not match the expected model."""


class ChecksumMismatch(ModelAssetError):
    """A downloaded file's sha512 differs from the official one."""


class AudioParametersOutOfRange(InvalidInput):
    """The header declares a sample rate or channel count outside the supported range (400)."""


# --- configuration and delivery -------------------------------------------------------


class InvalidConfiguration(AudioGuardError, ValueError):
    """The operator's configuration is invalid; the service refuses to start (500).

    Also a ``ValueError`` so start-up code that guards configuration with
    ``except ValueError`` catches it.
    """

    status_code = 500


class DeliveryError(AudioGuardError):
    """The SIFIS DHT did not accept a message (502); the outbox keeps it and retries.

    ``reason`` (timeout, connection, status, protocol) labels the failure metric.
    ``permanent``: the broker refused this message for good (a 4xx other than
    408/425/429); retrying it would block its topic forever, so it is set aside.
    """

    status_code = 502

    def __init__(self, message: str, *, reason: str = "connection", permanent: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.permanent = permanent
