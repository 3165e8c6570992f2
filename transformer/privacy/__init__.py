"""Audio anonymisation applied in the transformer before any feature is computed.

Methods, weakest first: ``none``, ``dp_noise`` (Laplace noise), ``scramble``
(segment shuffle) and ``speech_mask`` (speech replaced by envelope-matched noise,
other sounds kept). docs/privacy.md says what each protects and shows the
measurements (bench/privacy_report.py). ``stream`` applies the same methods to live
streams, without seams at chunk borders.
"""

from transformer.privacy.apply import apply_privacy
from transformer.privacy.policy import PrivacyPolicy
from transformer.privacy.request import (
    ENFORCEMENT_MODES,
    METHOD_PARAMETERS,
    PRIVACY_METHOD_ALIASES,
    PRIVACY_METHODS,
    ParameterSpec,
    PrivacyRequest,
    canonical_method,
    enforce_minimum,
    method_from_sifis_name,
    names_a_method,
    parse_privacy_request,
)

__all__ = [
    "ENFORCEMENT_MODES",
    "METHOD_PARAMETERS",
    "PRIVACY_METHODS",
    "PRIVACY_METHOD_ALIASES",
    "ParameterSpec",
    "PrivacyPolicy",
    "PrivacyRequest",
    "apply_privacy",
    "canonical_method",
    "enforce_minimum",
    "method_from_sifis_name",
    "names_a_method",
    "parse_privacy_request",
]
