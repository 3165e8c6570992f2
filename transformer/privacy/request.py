"""What a caller may ask for: method names, their parameters, and the operator's minimum.

A request is validated once, here, into a ``PrivacyRequest`` whose ``params``
hold every parameter of the method (defaults filled in), so the response can say
exactly which anonymisation was applied.

The rule for the operator's minimum: a request that names no method gets the
minimum (in both enforcement modes: it did not ask for less); a request that
names a weaker method is upgraded or refused, per the enforcement setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from contract.errors import InvalidParameter, PrivacyPolicyViolation
from contract.parsing import NotANumber, NotFinite, describe_value, parse_number

#: Canonical method names, weakest first (the order ``enforce_minimum`` compares).
PRIVACY_METHODS: tuple[str, ...] = ("none", "dp_noise", "scramble", "speech_mask")

#: Other spellings accepted by ``parse_privacy_request``: the old SIFIS service's
#: misspelt ``scrample`` and its ``nothing`` (= no transformation).
PRIVACY_METHOD_ALIASES: Mapping[str, str] = MappingProxyType({"scrample": "scramble", "nothing": "none"})

ENFORCEMENT_MODES: tuple[str, ...] = ("upgrade", "reject")


@dataclass(frozen=True)
class ParameterSpec:
    """One numeric method parameter: its default and its allowed interval.

    ``default`` None means "off unless given" (the parameter is then absent from
    the validated ``params``).
    """

    default: float | None
    low: float
    high: float
    low_inclusive: bool = True
    integer: bool = False
    unit: str = ""

    def describe_range(self) -> str:
        low = ">=" if self.low_inclusive else ">"
        unit = f" {self.unit}" if self.unit else ""
        kind = "an integer" if self.integer else "a number"
        return f"{kind} {low} {self.low:g} and <= {self.high:g}{unit}"

    def accepts(self, value: float) -> bool:
        above_low = value >= self.low if self.low_inclusive else value > self.low
        return above_low and value <= self.high and (not self.integer or value.is_integer())


#: Parameters of every method. The ranges keep each method meaningful: e.g. a
#: scramble segment below 50 ms would be a noise generator, not a shuffle.
METHOD_PARAMETERS: Mapping[str, Mapping[str, ParameterSpec]] = MappingProxyType(
    {
        "none": MappingProxyType({}),
        "dp_noise": MappingProxyType(
            {
                "epsilon": ParameterSpec(0.8, 0.0, 100.0, low_inclusive=False),
                "sensitivity": ParameterSpec(0.05, 0.0, 1.0, low_inclusive=False),
                "lowpass_hz": ParameterSpec(None, 100.0, 7900.0, unit="Hz"),
            }
        ),
        "scramble": MappingProxyType(
            {
                "segment_seconds": ParameterSpec(1.0, 0.05, 10.0, unit="s"),
                "crossfade_ms": ParameterSpec(5.0, 0.0, 50.0, unit="ms"),
            }
        ),
        "speech_mask": MappingProxyType(
            {
                "block_ms": ParameterSpec(64.0, 16.0, 500.0, unit="ms"),
                "margin_ms": ParameterSpec(250.0, 0.0, 1000.0, unit="ms"),
            }
        ),
    }
)


@dataclass(frozen=True)
class PrivacyRequest:
    """A validated anonymisation request.

    Attributes:
        method: canonical name, one of ``PRIVACY_METHODS``.
        params: every parameter of the method with its value (defaults filled
            in; optional parameters that are off are absent). Read-only.
        seed: fixes the randomness; for tests only, production requests leave it
            None so the noise and permutations come from the OS's secure source.
        named: False when the caller named no method (``method`` is then "none"
            and ``enforce_minimum`` gives it the operator minimum, never a 403).
    """

    method: str
    params: Mapping[str, float] = field(default_factory=dict)
    seed: int | None = None
    named: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.method not in PRIVACY_METHODS:
            raise InvalidParameter(_unknown_method_message(self.method))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def strength(self) -> int:
        """Position in ``PRIVACY_METHODS`` (0 = none)."""
        return PRIVACY_METHODS.index(self.method)


def _unknown_method_message(name: object) -> str:
    valid = ", ".join(PRIVACY_METHODS)
    aliases = ", ".join(f"{alias} = {target}" for alias, target in PRIVACY_METHOD_ALIASES.items())
    return f"unknown privacy method {name!r}: valid methods are {valid} (aliases: {aliases})"


def names_a_method(name: str | None) -> bool:
    """True unless ``name`` is None or blank: a request without it asks for the service default."""
    return name is not None and (not isinstance(name, str) or bool(name.strip()))


def canonical_method(name: str | None) -> str:
    """Canonical method name for ``name`` (None or "" = "none"; aliases resolved).

    Raises:
        InvalidParameter: the name is not a method or alias; the message lists the valid ones.
    """
    if name is None:
        return "none"
    if not isinstance(name, str):
        raise InvalidParameter(_unknown_method_message(name))
    key = name.strip().lower() or "none"
    key = PRIVACY_METHOD_ALIASES.get(key, key)
    if key not in PRIVACY_METHODS:
        raise InvalidParameter(_unknown_method_message(name))
    return key


def method_from_sifis_name(method: str, unknown: str = "reject") -> str:
    """A SIFIS request's ``method`` (path segment or DHT field) as a privacy method.

    ``none``, ``nothing`` (and an empty name) mean no transformation. The old
    service treated *any* other name as none as well, so a typo such as
    ``scramlbe`` silently disabled the anonymisation the caller wanted; with
    ``unknown="reject"`` (the default setting) such a name is a 400 listing the
    valid methods, with ``unknown="none"`` the old behaviour is kept.

    Raises:
        InvalidParameter: an unknown name with ``unknown="reject"``.
    """
    try:
        return canonical_method(method)
    except InvalidParameter:
        if unknown == "none":
            return "none"
        raise


def _number(method: str, name: str, value: object) -> float:
    """``value`` as a finite float; numeric strings (form fields) are accepted."""
    what = f"privacy parameter {name!r} of method {method!r}"
    try:
        return parse_number(value)
    except NotFinite:
        raise InvalidParameter(f"{what} must be finite, got {describe_value(value)}") from None
    except NotANumber:
        if isinstance(value, str):
            raise InvalidParameter(f"{what} must be a number, got {describe_value(value)}") from None
        raise InvalidParameter(f"{what} must be a number, got {type(value).__name__}") from None


def _validated_params(method: str, params: Mapping[str, object]) -> dict[str, float]:
    specs = METHOD_PARAMETERS[method]
    unknown = sorted(set(params) - set(specs))
    if unknown:
        allowed = ", ".join(specs) if specs else "none"
        raise InvalidParameter(
            f"unknown privacy parameter(s) {', '.join(map(repr, unknown))} for method "
            f"{method!r}: allowed parameters are {allowed}"
        )
    values: dict[str, float] = {}
    for name, spec in specs.items():
        raw = params.get(name)
        if raw is None:
            if spec.default is not None:
                values[name] = spec.default
            continue
        number = _number(method, name, raw)
        if not spec.accepts(number):
            raise InvalidParameter(
                f"privacy parameter {name!r} of method {method!r} must be "
                f"{spec.describe_range()}, got {number:g}"
            )
        values[name] = number
    _check_cross_constraints(method, values)
    return values


def _check_cross_constraints(method: str, values: Mapping[str, float]) -> None:
    if method == "scramble" and 2.0 * values["crossfade_ms"] >= 1000.0 * values["segment_seconds"]:
        raise InvalidParameter(
            "privacy parameter 'crossfade_ms' of method 'scramble' must be shorter than half "
            f"the segment ({values['segment_seconds']:g} s), got {values['crossfade_ms']:g} ms"
        )


def parse_privacy_request(
    method: str | None,
    params: Mapping[str, object],
    *,
    defaults: Mapping[str, Mapping[str, object]] | None = None,
) -> PrivacyRequest:
    """Validate a caller's method name and parameters.

    Args:
        method: method name or alias (case-insensitive). None or blank: the
            caller named no method; the result is "none" with ``named`` False
            (``enforce_minimum`` then applies the operator minimum).
        params: parameter name -> number (int, float or numeric string). A None
            value counts as "not given".
        defaults: operator defaults per canonical method (e.g.
            ``{"scramble": {"segment_seconds": 2.0}}`` from the settings); the
            caller's ``params`` override them, and they are validated the same way.

    Raises:
        InvalidParameter: unknown method (the message lists the valid ones),
            unknown parameter name, non-numeric value or value out of range.
    """
    canonical = canonical_method(method)
    merged: dict[str, object] = dict((defaults or {}).get(canonical, {}))
    merged.update({name: value for name, value in params.items() if value is not None})
    return PrivacyRequest(
        method=canonical, params=_validated_params(canonical, merged), named=names_a_method(method)
    )


def enforce_minimum(
    request: PrivacyRequest,
    minimum: str,
    enforcement: str,
    *,
    defaults: Mapping[str, Mapping[str, object]] | None = None,
) -> PrivacyRequest:
    """Apply the operator's minimum privacy level to a validated request.

    A request at or above ``minimum`` is returned unchanged. A request that
    named no method (``named`` False) gets ``minimum`` with its default
    parameters (``defaults`` as in ``parse_privacy_request``), whatever the
    enforcement. A request that named a weaker method gets the same when
    ``enforcement`` is "upgrade", and is refused when it is "reject".

    Raises:
        PrivacyPolicyViolation: (403) the request named a weaker method and
            ``enforcement`` is "reject".
        ValueError: ``minimum`` or ``enforcement`` is not a valid setting (operator error).
    """
    try:
        floor = canonical_method(minimum)
    except InvalidParameter as error:
        raise ValueError(f"invalid privacy_minimum setting: {error.message}") from None
    if enforcement not in ENFORCEMENT_MODES:
        raise ValueError(
            f"invalid privacy_enforcement setting {enforcement!r}: expected one of "
            f"{', '.join(ENFORCEMENT_MODES)}"
        )
    if request.strength >= PRIVACY_METHODS.index(floor):
        return request
    if enforcement == "reject" and request.named:
        raise PrivacyPolicyViolation(
            f"privacy method {request.method!r} is below this service's minimum {floor!r}: "
            f"ask for one of {', '.join(PRIVACY_METHODS[PRIVACY_METHODS.index(floor) :])}"
        )
    upgraded = parse_privacy_request(floor, {}, defaults=defaults)
    return PrivacyRequest(
        method=upgraded.method, params=upgraded.params, seed=request.seed, named=request.named
    )
