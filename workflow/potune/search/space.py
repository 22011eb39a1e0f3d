"""Typed search spaces: real (uniform / log-uniform), integer and categorical parameters.

A space is declared in YAML, one entry per hyperparameter::

    space:
      cutoff: {type: real, low: 4.0, high: 5.5}
      delta:  {type: real, low: 0.01, high: 1.0, prior: log-uniform}
      n_max:  {type: integer, low: 3, high: 6}
      sparse_method: {type: categorical, values: [cur_points, random]}

No string is ever evaluated as code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

TYPES = ("real", "integer", "categorical")
PRIORS = ("uniform", "log-uniform")


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    prior: str = "uniform"
    values: tuple | None = None

    def to_skopt(self):
        from skopt.space import Categorical, Integer, Real

        if self.type == "real":
            return Real(float(self.low), float(self.high), prior=self.prior, name=self.name)
        if self.type == "integer":
            return Integer(int(self.low), int(self.high), prior=self.prior, name=self.name)
        return Categorical(list(self.values), name=self.name)

    def coerce(self, value: Any) -> Any:
        """Cast ``value`` to this parameter's Python type (e.g. numpy int -> int)."""
        if self.type == "real":
            return float(value)
        if self.type == "integer":
            return int(round(float(value)))
        for v in self.values:  # categorical: match by value, tolerant of str/number round trips
            if v == value or str(v) == str(value):
                return v
        raise ValueError(f"{value!r} is not one of {list(self.values)} for '{self.name}'")

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return any(v == value or str(v) == str(value) for v in self.values)
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        return self.low - 1e-12 * abs(self.low) <= v <= self.high + 1e-12 * abs(self.high)


def parse_parameter(name: str, spec: Any) -> Parameter:
    """Parse one YAML entry into a :class:`Parameter`, raising :class:`ConfigError` on mistakes."""
    key = f"space.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{key}: expected a mapping like {{type: real, low: 0.1, high: 1.0}}, got {spec!r}")
    allowed = {"type", "low", "high", "prior", "values"}
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"{key}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    ptype = spec.get("type")
    if ptype not in TYPES:
        raise ConfigError(f"{key}.type: must be one of {', '.join(TYPES)}, got {ptype!r}")
    if ptype == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or len(values) == 0:
            raise ConfigError(f"{key}.values: a categorical parameter needs a non-empty list of values")
        if len(values) != len({str(v) for v in values}):
            raise ConfigError(f"{key}.values: contains duplicates: {values}")
        if "low" in spec or "high" in spec:
            raise ConfigError(f"{key}: a categorical parameter takes 'values', not low/high")
        return Parameter(name, "categorical", values=tuple(values))
    if "values" in spec:
        raise ConfigError(f"{key}: 'values' is only for type categorical")
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{key}.{bound}: missing")
        v = spec[bound]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{key}.{bound}: must be a finite number, got {v!r}")
        if ptype == "integer" and float(v) != int(v):
            raise ConfigError(f"{key}.{bound}: must be an integer for an integer parameter, got {v!r}")
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ConfigError(f"{key}: low ({low}) > high ({high})")
    if low == high:
        raise ConfigError(f"{key}: low == high ({low}); put a single value under 'fixed' instead")
    prior = spec.get("prior", "uniform")
    if prior not in PRIORS:
        raise ConfigError(f"{key}.prior: must be one of {', '.join(PRIORS)}, got {prior!r}")
    if prior == "log-uniform" and low <= 0:
        raise ConfigError(f"{key}: a log-uniform prior needs low > 0, got low = {low}")
    if ptype == "integer":
        return Parameter(name, "integer", int(low), int(high), prior)
    return Parameter(name, "real", float(low), float(high), prior)


class Space:
    """An ordered list of :class:`Parameter` with conversions between points and dicts."""

    def __init__(self, params: Sequence[Parameter]):
        if not params:
            raise ConfigError("space: the search space is empty; declare at least one hyperparameter")
        self.params = list(params)
        self.names = [p.name for p in self.params]

    @classmethod
    def from_config(cls, spec: dict) -> Space:
        if not isinstance(spec, dict):
            raise ConfigError("space: expected a mapping of hyperparameter name -> specification")
        return cls([parse_parameter(name, s) for name, s in spec.items()])

    def __len__(self) -> int:
        return len(self.params)

    def to_skopt(self):
        from skopt.space import Space as SkSpace

        return SkSpace([p.to_skopt() for p in self.params])

    def to_dict(self, point: Sequence) -> dict:
        """A point (list, in order) as ``{name: value}`` with plain Python types."""
        return {p.name: p.coerce(v) for p, v in zip(self.params, point)}

    def clip_point(self, values: dict, fallback: Sequence) -> list:
        """A point from ``values`` clipped into the space: reals and integers into their bounds
        (integers rounded), a categorical value kept if it is one of the choices, else its
        first choice; dimensions missing from ``values`` take ``fallback``'s value."""
        point = []
        for p, fb in zip(self.params, fallback):
            if p.name not in values:
                point.append(p.coerce(fb))
            elif p.type == "categorical":
                v = values[p.name]
                point.append(next((c for c in p.values if c == v or str(c) == str(v)), p.values[0]))
            else:
                v = min(max(float(values[p.name]), float(p.low)), float(p.high))
                point.append(p.coerce(v))
        return point

    def to_point(self, values: dict) -> list:
        """``{name: value}`` (e.g. a trial table row) as a point, in order."""
        missing = [n for n in self.names if n not in values]
        if missing:
            raise KeyError(f"missing hyperparameter(s) {missing}")
        return [p.coerce(values[p.name]) for p in self.params]

    def contains(self, values: dict) -> bool:
        return all(p.contains(values.get(p.name)) for p in self.params)

    def on_bounds(self, values: dict, rel_tol: float = 0.005) -> list[str]:
        """The searched real and integer hyperparameters of ``values`` that sit on a bound of
        the space, as e.g. ``"delta = 2 (upper bound)"``: the optimum may lie outside the space.

        A real value counts as on a bound within ``rel_tol`` of the range (measured in log
        space for a log-uniform prior); an integer only when equal to it. Categorical
        parameters have no bounds."""
        out = []
        for p in self.params:
            if p.type == "categorical" or values.get(p.name) is None:
                continue
            v = float(values[p.name])
            if p.type == "integer":
                tol = 0.0
                lo, hi, x = float(p.low), float(p.high), v
            elif p.prior == "log-uniform" and v > 0:
                lo, hi, x = math.log(p.low), math.log(p.high), math.log(v)
                tol = rel_tol * (hi - lo)
            else:
                lo, hi, x = float(p.low), float(p.high), v
                tol = rel_tol * (hi - lo)
            if x <= lo + tol:
                out.append(f"{p.name} = {values[p.name]:g} (lower bound {p.low:g})")
            elif x >= hi - tol:
                out.append(f"{p.name} = {values[p.name]:g} (upper bound {p.high:g})")
        return out
