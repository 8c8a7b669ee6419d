"""Live (or sandbox) trading through ccxt, behind the ``Broker`` protocol.

Orders are market orders created with MEM's client order id (``params={"clientOrderId": id}``; binance
reads ``newClientOrderId``), so a retry after a lost reply is refused by the exchange rather than doubled,
and looked up by client id: ``fetch_order`` with the exchange's client-id parameter where it has one, else
the open and closed orders filtered by ``clientOrderId``. Absence is only claimed when the exchange
answered and no order carries the id.

Credentials come only from ``MEM_CCXT_API_KEY`` / ``MEM_CCXT_SECRET`` (the helpers of
``mem_pipeline.core.credentials``); every error message is masked before it is raised or logged, the
exchange's own error (which may echo them) is never chained to the error raised (not even as a suppressed
``__context__``: the broker error is raised outside the ``except`` block), and the config holds no secret (it is
safe in run config and metadata).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import ccxt

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.credentials import exchange_credentials, masked_error
from mem_pipeline.core.orders import Side
from mem_pipeline.execution.errors import (
    BrokerAmbiguous,
    BrokerError,
    BrokerRejected,
    DuplicateClientOrderId,
    ExecutionError,
)
from mem_pipeline.execution.ids import is_mem_client_id
from mem_pipeline.execution.orders import ChildOrder, OrderReport
from mem_pipeline.execution.states import OrderState

log = logging.getLogger(__name__)

#: Exchange-specific parameter names for the client order id on create and on fetch.
_CREATE_PARAM = {"binance": "newClientOrderId", "binanceusdm": "newClientOrderId", "binancecoinm": "newClientOrderId"}
_FETCH_PARAM = {"binance": "origClientOrderId", "binanceusdm": "origClientOrderId", "binancecoinm": "origClientOrderId"}
_DEFINITE = (
    ccxt.InvalidOrder,
    ccxt.InsufficientFunds,
    ccxt.BadSymbol,
    ccxt.BadRequest,
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.AccountSuspended,
)


@dataclass(frozen=True)
class CcxtBrokerConfig(ParamsConfig):
    """``execution.ccxt`` in params.yaml. Holds no secrets."""

    SECTION: ClassVar[str] = "execution.ccxt"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    exchange: str = "binance"
    sandbox: bool = True
    symbols: tuple[str, ...] = ()  # markets listed in reconciliation (adoption); the ledger's are always looked up


def build_trading_exchange(config: CcxtBrokerConfig, credentials: Mapping[str, str] | None = None) -> Any:
    """The ccxt exchange (no network call), sandbox when configured; ``credentials`` (ccxt's ``apiKey``/``secret``,
    resolved from the environment by the Dagster resource) default to the environment's."""
    if config.exchange not in ccxt.exchanges:
        raise ExecutionError(f"ccxt has no exchange {config.exchange!r} (execution.ccxt.exchange)")
    found = exchange_credentials() if credentials is None else {k: v for k, v in credentials.items() if v}
    exchange = getattr(ccxt, config.exchange)({"enableRateLimit": True, **found})
    if config.sandbox:
        error: ExecutionError | None = None
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.BaseError as exc:
            error = ExecutionError(f"ccxt exchange {config.exchange!r} has no sandbox: {masked_error(exc)}")
        if error is not None:
            raise error  # outside the handler: the exchange's unmasked error is not chained
    return exchange


class CcxtBroker:
    name = "ccxt"

    def __init__(
        self, config: CcxtBrokerConfig, exchange: Any | None = None, credentials: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self._exchange = exchange
        self._credentials = credentials
        if exchange is not None and config.sandbox:  # an injected exchange is switched like a built one
            exchange.set_sandbox_mode(True)

    def __repr__(self) -> str:
        return f"CcxtBroker(exchange={self.config.exchange!r}, sandbox={self.config.sandbox!r})"

    @property
    def exchange(self) -> Any:
        if self._exchange is None:
            self._exchange = build_trading_exchange(self.config, self._credentials)
        return self._exchange

    # -- protocol -------------------------------------------------------------------------------

    def submit(self, order: ChildOrder) -> OrderReport:
        params = {"clientOrderId": order.client_id}
        if self.config.exchange in _CREATE_PARAM:
            params[_CREATE_PARAM[self.config.exchange]] = order.client_id
        what = f"creating order {order.client_id}"
        try:
            raw = self.exchange.create_order(order.symbol, "market", order.side.value, order.quantity, None, params)
        except ccxt.DuplicateOrderId as exc:
            error: BrokerError = DuplicateClientOrderId(self._message(what, exc))
        except _DEFINITE as exc:
            error = BrokerRejected(self._message(what, exc))
        except ccxt.BaseError as exc:
            error = BrokerAmbiguous(self._message(what, exc))
        else:
            return self._report(raw, order.client_id, order)
        raise error  # outside the handler: the exchange's unmasked error is not chained

    def lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        try:
            return self._lookup(client_id, symbol)
        except ccxt.BaseError as exc:
            error = BrokerAmbiguous(self._message(f"looking up order {client_id}", exc))
        raise error  # outside the handler: the exchange's unmasked error is not chained

    def orders(self, symbols: Iterable[str] | None = None) -> list[OrderReport]:
        out: list[OrderReport] = []
        try:
            for symbol in symbols if symbols is not None else self.config.symbols:
                for raw in self._listing(symbol):
                    cid = _client_id(raw)
                    if is_mem_client_id(cid):
                        out.append(self._report(raw, cid))
        except ccxt.BaseError as exc:
            error = BrokerAmbiguous(self._message("listing orders", exc))
        else:
            return out
        raise error  # outside the handler: the exchange's unmasked error is not chained

    def cancel(self, client_id: str, symbol: str) -> OrderReport:
        found = self.lookup(client_id, symbol)
        if found is None:
            raise BrokerRejected(f"ccxt {self.config.exchange}: no order {client_id} to cancel")
        try:
            raw = self.exchange.cancel_order(found.broker_order_id, symbol)
        except ccxt.OrderNotFound as exc:
            error: BrokerError = BrokerRejected(self._message(f"cancelling {client_id}", exc))
        except ccxt.BaseError as exc:
            error = BrokerAmbiguous(self._message(f"cancelling {client_id}", exc))
        else:
            return self._report(raw, client_id)
        raise error  # outside the handler: the exchange's unmasked error is not chained

    # -- helpers --------------------------------------------------------------------------------

    def _lookup(self, client_id: str, symbol: str) -> OrderReport | None:
        """The order with ``client_id``, None when the exchange answered and no order carries it (ccxt errors
        propagate)."""
        exchange = self.exchange
        if exchange.has.get("fetchOrder") is True:
            param = _FETCH_PARAM.get(self.config.exchange, "clientOrderId")
            try:
                return self._report(exchange.fetch_order("", symbol, {param: client_id}), client_id)
            except (ccxt.InvalidOrder, ccxt.NotSupported, ccxt.ArgumentsRequired, ccxt.BadRequest):
                pass  # OrderNotFound (an InvalidOrder) is no proof everywhere: search the listings
        for raw in self._listing(symbol):
            if _client_id(raw) == client_id:
                return self._report(raw, client_id)
        return None

    def _listing(self, symbol: str) -> list[dict[str, Any]]:
        exchange = self.exchange
        rows = list(exchange.fetch_open_orders(symbol))
        if exchange.has.get("fetchClosedOrders"):
            rows += list(exchange.fetch_closed_orders(symbol))
        return rows

    def _message(self, what: str, exc: Exception) -> str:
        return f"ccxt {self.config.exchange}: {what} failed ({masked_error(exc)})"

    def _report(self, raw: Mapping[str, Any], client_id: str, order: ChildOrder | None = None) -> OrderReport:
        amount = float(raw.get("amount") or (order.quantity if order else 0.0))
        filled = float(raw.get("filled") or 0.0)
        status = raw.get("status") or "open"
        if status == "open":
            state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED
        elif status == "closed":
            state = OrderState.FILLED if filled >= amount * (1 - 1e-9) else OrderState.CANCELLED
        else:
            state = {
                "canceled": OrderState.CANCELLED,
                "cancelled": OrderState.CANCELLED,
                "expired": OrderState.EXPIRED,
                "rejected": OrderState.REJECTED,
            }.get(status, OrderState.ACKNOWLEDGED)
        side = raw.get("side") or (order.side.value if order else "buy")
        average = raw.get("average")
        return OrderReport(
            client_id=client_id,
            broker_order_id=str(raw.get("id") or ""),
            symbol=str(raw.get("symbol") or (order.symbol if order else "")),
            side=Side.parse(side),
            quantity=amount,
            state=state,
            filled_quantity=filled,
            average_price=float(average) if average is not None else None,
        )


def _client_id(raw: Mapping[str, Any]) -> str | None:
    cid = raw.get("clientOrderId")
    if cid is None and isinstance(raw.get("info"), Mapping):
        info = raw["info"]
        cid = info.get("clientOrderId") or info.get("newClientOrderId") or info.get("origClientOrderId")
    return str(cid) if cid is not None else None
