"""The operator's privacy policy, applied alike to a request and to a live source.

One frozen object made by the composition root from the settings: the minimum method,
what happens to a weaker one ("upgrade" or "reject") and the operator's default
parameters. ``apply`` turns what a caller or a sources file asked for into what is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformer.privacy.request import PrivacyRequest, enforce_minimum, parse_privacy_request


@dataclass(frozen=True)
class PrivacyPolicy:
    """Attributes:
    minimum: the weakest method applied (canonical name).
    enforcement: "upgrade" a weaker request to the minimum, or "reject" it (403).
    scramble_segment_seconds: scramble's segment length unless the request sets one.
    """

    minimum: str = "none"
    enforcement: str = "upgrade"
    scramble_segment_seconds: float = 1.0

    @property
    def defaults(self) -> dict[str, dict[str, Any]]:
        """The operator's default parameters per method."""
        return {"scramble": {"segment_seconds": self.scramble_segment_seconds}}

    def parse(self, method: str | None, params: Mapping[str, object]) -> PrivacyRequest:
        """A caller's method and parameters, validated, with the operator's defaults (InvalidParameter)."""
        return parse_privacy_request(method, params, defaults=self.defaults)

    def enforce(self, requested: PrivacyRequest) -> PrivacyRequest:
        """What is applied for ``requested`` (PrivacyPolicyViolation with enforcement "reject")."""
        return enforce_minimum(requested, self.minimum, self.enforcement, defaults=self.defaults)

    def apply(
        self, method: str | None, params: Mapping[str, object]
    ) -> tuple[PrivacyRequest, PrivacyRequest]:
        """(requested, applied) for a caller's method and parameters.

        Raises:
            InvalidParameter: unknown method or parameter (400).
            PrivacyPolicyViolation: a weaker method named with enforcement "reject" (403).
        """
        requested = self.parse(method, params)
        return requested, self.enforce(requested)
