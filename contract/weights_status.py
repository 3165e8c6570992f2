"""Whether an answer came from the published model: carried by every answer, not only the logs.

The transformer knows its own files (VGGish checkpoint, PCA parameters); the
predictor states its classifier's in every response (``weights_official``).
An answer is official only when both are. With synthetic or altered weights
every score, label and alarm is meaningless, so each interface says so: a v2
response parameter, a SIFIS field, a banner line in ``audioguard client`` and
``classify`` output, a banner on the timeline plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

#: v2 response parameter (predictor and transformer) and SIFIS/JSON field.
WEIGHTS_OFFICIAL: Final = "weights_official"
#: v2 response parameter and SIFIS/JSON field present only when the weights are not official.
WEIGHTS_WARNING: Final = "weights_warning"
#: The one sentence every interface shows for non-official weights.
NOT_OFFICIAL_WARNING: Final = (
    "these answers do not come from the official model weights (synthetic or altered files): "
    "scores, labels and anomalies mean nothing; install the official weights with "
    "`audioguard weights download`"
)


@dataclass(frozen=True)
class WeightsStatus:
    """The sha512 verdict on the files behind one answer.

    Attributes:
        embedding_official: the VGGish checkpoint and PCA parameters are the published files.
        classifier_official: the classifier is; None when the predictor did not say
            (an older predictor): then the answer is not called official.
    """

    embedding_official: bool
    classifier_official: bool | None

    @property
    def official(self) -> bool:
        return self.embedding_official and self.classifier_official is True

    @property
    def warning(self) -> str | None:
        """``NOT_OFFICIAL_WARNING`` unless every file is official."""
        return None if self.official else NOT_OFFICIAL_WARNING

    def fields(self) -> dict[str, Any]:
        """``weights_official`` always, ``weights_warning`` when not official (JSON, v2 parameters)."""
        fields: dict[str, Any] = {WEIGHTS_OFFICIAL: self.official}
        if self.warning is not None:
            fields[WEIGHTS_WARNING] = self.warning
        return fields


def weights_official_parameter(parameters: Any) -> bool | None:
    """The ``weights_official`` flag of v2 response parameters (REST dict or gRPC map), else None."""
    if not parameters or WEIGHTS_OFFICIAL not in parameters:
        return None
    value = parameters[WEIGHTS_OFFICIAL]
    if hasattr(value, "WhichOneof"):  # a gRPC InferParameter
        kind = value.WhichOneof("parameter_choice")
        value = getattr(value, kind) if kind else None
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower())
    return value if isinstance(value, bool) else None
