"""Circuit breaker around the broker: after ``failures`` consecutive failures it opens and nothing is sent;
after ``cooldown_seconds`` one probe is let through (half-open); its success closes the breaker, its
failure opens it again for another cooldown. A definite rejection is an answer, not a failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.execution.errors import ExecutionError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig(ParamsConfig):
    """``execution.breaker`` in params.yaml."""

    SECTION: ClassVar[str] = "execution.breaker"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    failures: int = 5
    cooldown_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.failures < 1 or self.cooldown_seconds < 0:
            raise ExecutionError("execution.breaker needs failures >= 1 and cooldown_seconds >= 0")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CircuitBreaker:
    def __init__(self, config: BreakerConfig = BreakerConfig(), clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at: dt.datetime | None = None
        self._probing = False
        self.history: list[tuple[dt.datetime, BreakerState]] = []  # every change, for metadata

    @property
    def state(self) -> BreakerState:
        """The state now: an open breaker whose cooldown has passed reads as half-open."""
        if self._state is BreakerState.OPEN and self._cooldown_over():
            self._set(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def snapshot(self) -> dict[str, Any]:
        """The visible state (for logs and Dagster metadata)."""
        return {
            "state": self.state.value,
            "consecutive_failures": self._consecutive,
            "opened_at": self._opened_at.isoformat() if self._opened_at else None,
            "threshold": self.config.failures,
            "cooldown_seconds": self.config.cooldown_seconds,
        }

    def allow(self) -> bool:
        """May a call go to the broker now? In half-open, exactly one probe is allowed until it reports."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._opened_at = None
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._consecutive += 1
        was_probe = self._probing
        self._probing = False
        if was_probe or self._state is BreakerState.HALF_OPEN or self._consecutive >= self.config.failures:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _cooldown_over(self) -> bool:
        assert self._opened_at is not None
        return (self._clock() - self._opened_at).total_seconds() >= self.config.cooldown_seconds

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            self.history.append((self._clock(), state))
