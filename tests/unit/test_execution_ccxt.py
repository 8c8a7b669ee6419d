"""CcxtBroker against a stand-in exchange (offline): client ids on create, lookup by client id, sandbox,
error mapping — and no credential ever reaches a log record, an exception, the ledger or the paper state."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import ccxt
import pytest
from execution_support import order_frame
from leak_support import assert_no_secret, exception_chain

from mem_pipeline.core.credentials import API_KEY_ENV, SECRET_ENV
from mem_pipeline.core.orders import Side
from mem_pipeline.execution.breaker import BreakerConfig, CircuitBreaker
from mem_pipeline.execution.brokers.base import Broker
from mem_pipeline.execution.brokers.ccxt_broker import CcxtBroker, CcxtBrokerConfig, build_trading_exchange
from mem_pipeline.execution.brokers.paper import PaperBroker
from mem_pipeline.execution.engine import execute
from mem_pipeline.execution.errors import BrokerAmbiguous, BrokerRejected, DuplicateClientOrderId
from mem_pipeline.execution.gate import GateConfig, PreTradeGate
from mem_pipeline.execution.ids import client_order_id
from mem_pipeline.execution.ledger import Ledger
from mem_pipeline.execution.orders import ChildOrder
from mem_pipeline.execution.reconcile import reconcile
from mem_pipeline.execution.states import OrderState

BTC = "BTC/USDT"
FAKE_KEY = "fake-api-key-Zx81QvR4"
FAKE_SECRET = "fake-secret-Wq93LmT7"
LOOSE = GateConfig(max_order_notional=1e9, max_position_notional=1e9, max_gross_exposure=1e12)


class StandInTradingExchange:
    """Keeps orders like an exchange: unique client ids, open/closed listings, fetch by client id.

    ``fail``: exceptions for the next create_order calls (``accept_then`` ones accept the order first);
    ``lookup_fail``: exceptions for the next lookups; ``cancel_fail``: for the next cancels. Error texts echo
    the credentials, as careless exchange errors sometimes do.
    """

    def __init__(self, exchange_id: str = "binance", fetch_order: bool = True) -> None:
        self.id = exchange_id
        self.has = {"fetchOrder": fetch_order, "fetchOpenOrders": True, "fetchClosedOrders": True}
        self.orders: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.sandbox = False
        self.fail: list[tuple[type[Exception], bool]] = []
        self.lookup_fail: list[type[Exception]] = []
        self.cancel_fail: list[type[Exception]] = []
        self.apiKey = os.environ.get(API_KEY_ENV, "")
        self.secret = os.environ.get(SECRET_ENV, "")

    def set_sandbox_mode(self, enabled: bool) -> None:
        self.sandbox = enabled

    def _leak(self) -> str:
        return f"apiKey={self.apiKey} signature over secret {self.secret}"

    def create_order(self, symbol, type, side, amount, price=None, params=None) -> dict[str, Any]:  # noqa: A002
        params = dict(params or {})
        self.calls.append(("create_order", (symbol, type, side, amount, params)))
        cid = params.get("newClientOrderId") or params.get("clientOrderId")
        failure = self.fail.pop(0) if self.fail else None
        if failure is not None and not failure[1]:
            raise failure[0](f"create failed: {self._leak()}")
        if any(o["clientOrderId"] == cid for o in self.orders.values()):
            raise ccxt.DuplicateOrderId(f"Duplicate order sent. {self._leak()}")
        oid = str(1000 + len(self.orders))
        self.orders[oid] = {"id": oid, "clientOrderId": cid, "symbol": symbol, "side": side, "amount": amount,
                            "filled": 0.0, "average": None, "status": "open", "info": {}}  # fmt: skip
        if failure is not None:
            raise failure[0](f"reply lost: {self._leak()}")
        return dict(self.orders[oid])

    def fill(self, cid: str, qty: float, price: float) -> None:
        order = next(o for o in self.orders.values() if o["clientOrderId"] == cid)
        total = order["filled"] + qty
        order["average"] = ((order["average"] or 0.0) * order["filled"] + price * qty) / total
        order["filled"] = total
        order["status"] = "closed" if total >= order["amount"] else "open"

    def _lookup_failure(self) -> None:
        if self.lookup_fail:
            raise self.lookup_fail.pop(0)(f"lookup failed: {self._leak()}")

    def fetch_order(self, id: str, symbol: str | None = None, params: dict | None = None) -> dict[str, Any]:  # noqa: A002
        self.calls.append(("fetch_order", (id, symbol, dict(params or {}))))
        self._lookup_failure()
        cid = (params or {}).get("origClientOrderId") or (params or {}).get("clientOrderId")
        for order in self.orders.values():
            if order["clientOrderId"] == cid and order["symbol"] == symbol:
                return dict(order)
        raise ccxt.OrderNotFound(f"Order does not exist. {self._leak()}")

    def fetch_open_orders(self, symbol: str | None = None, *args: Any) -> list[dict[str, Any]]:
        self.calls.append(("fetch_open_orders", symbol))
        self._lookup_failure()
        return [dict(o) for o in self.orders.values() if o["symbol"] == symbol and o["status"] == "open"]

    def fetch_closed_orders(self, symbol: str | None = None, *args: Any) -> list[dict[str, Any]]:
        self.calls.append(("fetch_closed_orders", symbol))
        return [dict(o) for o in self.orders.values() if o["symbol"] == symbol and o["status"] != "open"]

    def cancel_order(self, id: str, symbol: str | None = None, params: dict | None = None) -> dict[str, Any]:  # noqa: A002
        if self.cancel_fail:
            raise self.cancel_fail.pop(0)(f"cancel failed: {self._leak()}")
        self.orders[id]["status"] = "canceled"
        return dict(self.orders[id])


def child(cid: str, qty: float = 0.5) -> ChildOrder:
    return ChildOrder(cid, None, 0, BTC, Side.BUY, qty, 40_000.0, dt.date(2024, 1, 2))


CID = client_order_id("v1", BTC, 0)


def test_create_with_client_id_then_lookup_by_client_id_in_sandbox() -> None:
    ex = StandInTradingExchange()
    broker = CcxtBroker(CcxtBrokerConfig("binance", sandbox=True, symbols=(BTC,)), ex)
    assert isinstance(broker, Broker) and ex.sandbox
    report = broker.submit(child(CID))
    assert report.state is OrderState.ACKNOWLEDGED and report.broker_order_id == "1000"
    name, (symbol, kind, side, amount, params) = ex.calls[0]
    assert (name, symbol, kind, side, amount) == ("create_order", BTC, "market", "buy", 0.5)
    assert params == {"clientOrderId": CID, "newClientOrderId": CID}
    found = broker.lookup(CID, BTC)
    assert found is not None and found.client_id == CID
    assert ex.calls[-1] == ("fetch_order", ("", BTC, {"origClientOrderId": CID}))
    ex.fill(CID, 0.2, 40_100.0)
    partial = broker.lookup(CID, BTC)
    assert (partial.state, partial.filled_quantity, partial.average_price) == (OrderState.PARTIALLY_FILLED, 0.2, 40_100)
    ex.fill(CID, 0.3, 40_200.0)
    assert broker.lookup(CID, BTC).state is OrderState.FILLED
    assert broker.lookup(client_order_id("v1", BTC, 9), BTC) is None
    assert [r.client_id for r in broker.orders()] == [CID]


def test_exchanges_without_fetch_by_client_id_are_searched_in_open_and_closed_orders() -> None:
    ex = StandInTradingExchange("kraken", fetch_order=False)
    broker = CcxtBroker(CcxtBrokerConfig("kraken", sandbox=False), ex)
    broker.submit(child(CID))
    assert ex.calls[0][1][4] == {"clientOrderId": CID} and not ex.sandbox
    assert broker.lookup(CID, BTC).broker_order_id == "1000"
    assert {c[0] for c in ex.calls[1:]} == {"fetch_open_orders", "fetch_closed_orders"}


def test_errors_map_to_definite_or_ambiguous_outcomes() -> None:
    ex = StandInTradingExchange()
    broker = CcxtBroker(CcxtBrokerConfig("binance", sandbox=False), ex)
    ex.fail = [(ccxt.InsufficientFunds, False), (ccxt.RequestTimeout, True), (ccxt.ExchangeNotAvailable, False)]
    with pytest.raises(BrokerRejected, match="InsufficientFunds"):
        broker.submit(child(CID))
    with pytest.raises(BrokerAmbiguous, match="RequestTimeout"):
        broker.submit(child(CID))  # accepted, reply lost
    with pytest.raises(BrokerAmbiguous):
        broker.submit(child(client_order_id("v1", BTC, 1)))
    with pytest.raises(DuplicateClientOrderId):
        broker.submit(child(CID))  # the exchange refuses the second order with this id
    ex.lookup_fail = [ccxt.NetworkError]
    with pytest.raises(BrokerAmbiguous):
        broker.lookup(CID, BTC)


def test_engine_through_ccxt_recovers_lost_replies_without_duplicates(tmp_path) -> None:
    ex = StandInTradingExchange()
    broker = CcxtBroker(CcxtBrokerConfig("binance", sandbox=True, symbols=(BTC,)), ex)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ex.fail = [(ccxt.RequestTimeout, True), (ccxt.NetworkError, False)]
    frame = order_frame("v1", [BTC], quantity=3, lot_size=0.001, price=40_000.0, n_slices=3)
    result = execute(frame, ledger, broker, PreTradeGate(LOOSE), CircuitBreaker())
    assert result.recovered == 1 and result.submitted == 2  # one found by lookup, one absent then resent
    assert sorted(o["clientOrderId"] for o in ex.orders.values()) == sorted(c.client_id for c in ledger.children())
    assert len(ex.orders) == 3
    assert execute(frame, ledger, broker, PreTradeGate(LOOSE), CircuitBreaker()).submitted == 0


def test_build_trading_exchange_takes_credentials_only_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, FAKE_KEY)
    monkeypatch.setenv(SECRET_ENV, FAKE_SECRET)
    config = CcxtBrokerConfig.from_params({"exchange": "binance", "sandbox": True, "symbols": [BTC]})
    exchange = build_trading_exchange(config)  # no network call
    assert (exchange.apiKey, exchange.secret) == (FAKE_KEY, FAKE_SECRET)
    assert exchange.isSandboxModeEnabled
    assert FAKE_KEY not in repr(config) and FAKE_KEY not in repr(CcxtBroker(config, exchange))
    with pytest.raises(Exception, match="unknown keys"):
        CcxtBrokerConfig.from_params({"exchange": "binance", "apiKey": FAKE_KEY})


def test_fake_credentials_appear_in_no_log_exception_ledger_or_state_file(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv(API_KEY_ENV, FAKE_KEY)
    monkeypatch.setenv(SECRET_ENV, FAKE_SECRET)
    caplog.set_level(logging.DEBUG)
    ex = StandInTradingExchange()
    assert ex.apiKey == FAKE_KEY  # the stand-in holds the secrets and echoes them in its errors
    broker = CcxtBroker(CcxtBrokerConfig("binance", sandbox=True, symbols=(BTC,)), ex)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger' / 'ledger.sqlite'}")
    paper = PaperBroker(tmp_path / "paper")
    ex.fail = [(ccxt.RequestTimeout, True), (ccxt.InvalidOrder, False), (ccxt.NetworkError, False),
               (ccxt.AuthenticationError, False), (ccxt.ExchangeError, True)]  # fmt: skip
    ex.lookup_fail = [ccxt.NetworkError, ccxt.RequestTimeout]
    frame = order_frame("v1", [BTC, "ETH/USDT"], quantity=5, lot_size=0.001, price=100.0, n_slices=5)
    messages: list[str] = []
    breaker = CircuitBreaker(BreakerConfig(failures=2, cooldown_seconds=0))
    results = []
    for _ in range(3):
        results.append(execute(frame, ledger, broker, PreTradeGate(LOOSE), breaker))
    for call in (lambda: broker.submit(child(CID)), lambda: broker.cancel("mem" + "0" * 24, BTC)):
        ex.fail = [(ccxt.ExchangeError, False)]
        ex.lookup_fail = [ccxt.NetworkError]
        with pytest.raises(Exception) as info:
            call()
        messages += [str(info.value), repr(info.value)]
    execute(order_frame("p1", ["AAA"]), ledger, paper, PreTradeGate(LOOSE), CircuitBreaker())
    reconcile(ledger, broker)

    assert any(r.broker_rejected for r in results) and any(r.recovered or r.unresolved for r in results)
    texts = messages + [json.dumps(r.summary(), default=str) for r in results]
    texts += [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    texts += [str(v) for row in ledger.transitions_frame().rows() for v in row]
    blobs = [p.read_bytes() for p in _files(tmp_path)]  # ledger and paper-state files, WAL included
    assert caplog.records and len(blobs) >= 2
    for secret in (FAKE_KEY, FAKE_SECRET):
        assert not any(secret in t for t in texts), secret
        assert not any(secret.encode() in b for b in blobs), secret
    assert any("***" in t for t in texts)  # the echoed secrets were there, and masked


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _leaky_broker(monkeypatch: pytest.MonkeyPatch, exchange_id: str = "binance") -> tuple[Any, CcxtBroker]:
    monkeypatch.setenv(API_KEY_ENV, FAKE_KEY)
    monkeypatch.setenv(SECRET_ENV, FAKE_SECRET)
    ex = StandInTradingExchange(exchange_id)
    assert FAKE_KEY in ex._leak() and FAKE_SECRET in ex._leak()  # its errors echo both
    return ex, CcxtBroker(CcxtBrokerConfig(exchange_id, sandbox=True, symbols=(BTC,)), ex)


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        ((ccxt.InsufficientFunds, False), BrokerRejected),
        ((ccxt.AuthenticationError, False), BrokerRejected),
        ((ccxt.RequestTimeout, True), BrokerAmbiguous),  # accepted, reply lost
        ((ccxt.ExchangeNotAvailable, False), BrokerAmbiguous),
        (None, DuplicateClientOrderId),  # the exchange already holds this client id
    ],
    ids=["rejected", "auth", "reply-lost", "unavailable", "duplicate"],
)
def test_submit_errors_echoing_credentials_keep_them_out_of_the_chain_traceback_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Any, raised: type[Exception]
) -> None:
    ex, broker = _leaky_broker(monkeypatch)
    caplog.set_level(logging.DEBUG)
    if failure is None:
        broker.submit(child(CID))
    else:
        ex.fail = [failure]
    with pytest.raises(raised) as info:
        broker.submit(child(CID))
    assert "apiKey=***" in str(info.value) and "secret ***" in str(info.value)  # the exchange's words, masked
    assert exception_chain(info.value) == [info.value]
    assert_no_secret(info.value, caplog, FAKE_KEY, FAKE_SECRET)


@pytest.mark.parametrize(
    ("exchange_id", "lookup_fail"),
    [
        ("binance", [ccxt.NetworkError]),  # fetch by client id fails
        ("binance", [ccxt.OrderNotFound, ccxt.RequestTimeout]),  # not found by id, then the listing fails
        ("kraken", [ccxt.ExchangeNotAvailable]),  # no fetch by client id: the listing fails
    ],
    ids=["fetch-order", "not-found-then-listing", "listing-only"],
)
def test_lookup_errors_echoing_credentials_keep_them_out_of_the_chain_traceback_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, exchange_id: str, lookup_fail: list
) -> None:
    ex, broker = _leaky_broker(monkeypatch, exchange_id)
    ex.has["fetchOrder"] = exchange_id == "binance"
    caplog.set_level(logging.DEBUG)
    ex.lookup_fail = list(lookup_fail)
    with pytest.raises(BrokerAmbiguous, match="looking up") as info:
        broker.lookup(CID, BTC)
    assert "apiKey=***" in str(info.value)
    assert exception_chain(info.value) == [info.value]
    assert_no_secret(info.value, caplog, FAKE_KEY, FAKE_SECRET)


def test_listing_cancel_and_sandbox_errors_echoing_credentials_are_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ex, broker = _leaky_broker(monkeypatch)
    caplog.set_level(logging.DEBUG)
    ex.lookup_fail = [ccxt.NetworkError]
    with pytest.raises(BrokerAmbiguous, match="listing orders") as info:
        broker.orders()
    assert_no_secret(info.value, caplog, FAKE_KEY, FAKE_SECRET)
    broker.submit(child(CID))
    for error, raised in ((ccxt.OrderNotFound, BrokerRejected), (ccxt.ExchangeError, BrokerAmbiguous)):
        ex.cancel_fail = [error]
        with pytest.raises(raised, match="cancelling") as info:
            broker.cancel(CID, BTC)
        assert "apiKey=***" in str(info.value)
        assert_no_secret(info.value, caplog, FAKE_KEY, FAKE_SECRET)

    def failing_sandbox(self: Any, enabled: bool) -> None:
        raise ccxt.NotSupported(f"no testnet for apiKey={FAKE_KEY} secret={FAKE_SECRET}")

    monkeypatch.setattr(ccxt.binance, "set_sandbox_mode", failing_sandbox)
    with pytest.raises(Exception, match="no sandbox") as info:
        build_trading_exchange(CcxtBrokerConfig("binance", sandbox=True))
    assert "apiKey=***" in str(info.value)
    assert_no_secret(info.value, caplog, FAKE_KEY, FAKE_SECRET)
