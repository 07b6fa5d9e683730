"""What every effect estimate shares: whether its 95 % interval excludes zero, and a plain
dict of it (``EffectEstimate``, ``DidEstimate``, ``DesignEstimate``, ``PooledEffect``)."""

from __future__ import annotations

from dataclasses import Field, asdict
from typing import Any, ClassVar

__all__ = ["IntervalEstimate"]


class IntervalEstimate:
    """Base of the frozen estimate dataclasses.

    ``interval_fields`` names the lower and upper bound of the estimate's 95 % interval. An
    estimate that has a ``status`` is significant only when it is ``"ok"``.
    """

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    interval_fields: ClassVar[tuple[str, str]] = ("relative_lower_95", "relative_upper_95")

    @property
    def significant(self) -> bool:
        """Status ok (where there is one) and the 95 % interval excludes 0 (either side)."""
        lower, upper = (float(getattr(self, name)) for name in self.interval_fields)
        return bool(getattr(self, "status", "ok") == "ok" and (upper < 0 or lower > 0))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) plus ``significant``."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["significant"] = self.significant
        return d
