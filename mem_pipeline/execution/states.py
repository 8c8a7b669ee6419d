"""Order sides, order states and the only transitions an order may take.

``new`` (written to the ledger, maybe not sent) → ``submitted`` (sent; the broker may hold it) →
``acknowledged`` (the broker holds it) → ``partially_filled`` → ``filled``; any live order may end
``cancelled``, ``rejected`` or ``expired``. A partially filled order may take more partial fills.
Terminal states have no way out.
"""

from __future__ import annotations

from enum import StrEnum

from mem_pipeline.execution.errors import IllegalTransition


class OrderState(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


S = OrderState
TERMINAL: frozenset[OrderState] = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
_ENDINGS = {S.CANCELLED, S.REJECTED, S.EXPIRED}
ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    # A new order never sent may be cancelled (e.g. kill switch), refused by the broker on send, or expire
    # unsent (older than the engine's child time to live).
    S.NEW: frozenset({S.SUBMITTED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.SUBMITTED: frozenset({S.ACKNOWLEDGED, S.PARTIALLY_FILLED, S.FILLED} | _ENDINGS),
    S.ACKNOWLEDGED: frozenset({S.PARTIALLY_FILLED, S.FILLED} | _ENDINGS),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    **{state: frozenset() for state in TERMINAL},
}
#: Where a live order stands on the way to a state: used to walk the ledger through every step it missed.
_RANK = {S.NEW: 0, S.SUBMITTED: 1, S.ACKNOWLEDGED: 2, S.PARTIALLY_FILLED: 3}


def can_transition(current: OrderState, target: OrderState) -> bool:
    return target in ALLOWED[current]


def transition(current: OrderState, target: OrderState, client_id: str) -> OrderState:
    """``target`` if the move is legal, else ``IllegalTransition`` naming the order, from and to."""
    if target not in ALLOWED[current]:
        raise IllegalTransition(client_id, current.value, target.value)
    return target


def path(current: OrderState, target: OrderState, client_id: str) -> list[OrderState]:
    """The legal steps from ``current`` to ``target`` (empty if already there and not a repeatable state).

    The broker reports where an order is now; the ledger may be several steps behind (a lost reply, a
    crash). Every step is recorded, so the transition log always reads as a legal chain.
    """
    if current == target and target is not S.PARTIALLY_FILLED:
        return []
    steps: list[OrderState] = []
    state = current
    while target not in ALLOWED[state]:
        following = [s for s in ALLOWED[state] if s in _RANK and _RANK[s] > _RANK.get(state, 99)]
        if state.terminal or not following:
            raise IllegalTransition(client_id, current.value, target.value)
        state = min(following, key=_RANK.__getitem__)
        steps.append(state)
    steps.append(target)
    return steps
