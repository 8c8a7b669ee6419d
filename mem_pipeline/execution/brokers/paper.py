"""Paper broker: accepts orders like an exchange and fills them against later bars with the impact model.

State (orders, fills, bars processed) lives in a SQLite file under ``state_dir``, committed before every
reply, so a new ``PaperBroker`` over the same folder after a restart holds the same orders — and, like an
exchange, refuses a second order with a client id it already holds (``DuplicateClientOrderId``; the count
of such attempts is kept, so tests can prove the engine never tries).

Fills (``on_bars``): an order fills only on bars dated after its decision date, each bar at most once.
Per bar it takes at most ``participation_cap`` of the bar's volume (so large orders fill partially over
several bars) at the bar's open moved by the cost of the synthetic market's impact model:
``cost_bps = spread/2 + eta sigma (q/ADV)^delta 1e4 + noise_scale sigma sqrt(q/ADV) 1e4 z``, with ``sigma``
and ``ADV`` from the ``adv_window`` bars before the fill (point in time) and ``z`` standard normal seeded
from (seed, client id, bar date): the same orders and bars give the same fills. After ``max_bars`` bars
the unfilled rest expires. Every fill carries its features, so the ledger can export it as slippage
training data.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from mem_pipeline.core.config import ParamsConfig
from mem_pipeline.core.orders import Side
from mem_pipeline.core.sqlite_wal import enable_wal
from mem_pipeline.execution.errors import BrokerRejected, DuplicateClientOrderId, ExecutionError
from mem_pipeline.execution.impact import fill_noise, fill_price, impact_cost_bps, with_fill_stats
from mem_pipeline.execution.orders import ChildOrder, Fill, OrderReport
from mem_pipeline.execution.states import OrderState

STATE_FILE = "paper_broker.sqlite"
_OPEN = (OrderState.ACKNOWLEDGED.value, OrderState.PARTIALLY_FILLED.value)


@dataclass(frozen=True)
class PaperConfig(ParamsConfig):
    """``execution.paper`` in params.yaml (impact defaults = the synthetic market's)."""

    SECTION: ClassVar[str] = "execution.paper"
    ERROR: ClassVar[type[Exception]] = ExecutionError

    participation_cap: float = 0.1
    eta: float = 0.5
    delta: float = 0.6
    noise_scale: float = 0.3
    default_spread_bps: float = 5.0
    default_sigma: float = 0.02
    adv_window: int = 20
    max_bars: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.participation_cap <= 1:
            raise ExecutionError(f"execution.paper.participation_cap must be in (0, 1], got {self.participation_cap}")
        if self.eta < 0 or self.delta <= 0 or self.noise_scale < 0 or self.adv_window < 2 or self.max_bars < 1:
            raise ExecutionError(
                "execution.paper needs eta >= 0, delta > 0, noise_scale >= 0, adv_window >= 2, max_bars >= 1"
            )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL UNIQUE, symbol TEXT NOT NULL,
    side TEXT NOT NULL, quantity REAL NOT NULL, reference_price REAL, decision_date TEXT NOT NULL,
    state TEXT NOT NULL, filled REAL NOT NULL DEFAULT 0, average_price REAL, last_bar TEXT,
    bars_seen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, date TEXT NOT NULL, quantity REAL NOT NULL,
    price REAL NOT NULL, cost_bps REAL, size_over_adv REAL, spread_bps REAL, sigma REAL, participation REAL);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (client_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


BUSY_TIMEOUT_MS = 10_000


class PaperBroker:
    name = "paper"

    def __init__(self, state_dir: Path | str, config: PaperConfig = PaperConfig()) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / STATE_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # first: the next statements may wait
        enable_wal(self._db, BUSY_TIMEOUT_MS)  # several processes may open a brand-new exchange at once
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"PaperBroker({str(self.state_dir)!r})"

    # -- protocol -------------------------------------------------------------------------------

    def submit(self, order: ChildOrder) -> OrderReport:
        if not (math.isfinite(order.quantity) and order.quantity > 0):
            raise BrokerRejected(f"paper: order {order.client_id} has quantity {order.quantity}")
        # One statement, one autocommitted transaction: the order is durable before the reply.
        cursor = self._db.execute(
            "INSERT INTO orders (client_id, symbol, side, quantity, reference_price, decision_date, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(client_id) DO NOTHING",
            (order.client_id, order.symbol, order.side.value, order.quantity, order.reference_price,
             order.decision_date.isoformat(), OrderState.ACKNOWLEDGED.value),
        )  # fmt: skip
        if cursor.rowcount == 0:
            self._db.execute(
                "INSERT INTO counters VALUES ('duplicate_attempts', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1"
            )
            raise DuplicateClientOrderId(f"paper: client order id {order.client_id} already exists")
        seq = cursor.lastrowid
        return OrderReport(
            order.client_id, f"paper-{seq}", order.symbol, order.side, order.quantity, OrderState.ACKNOWLEDGED
        )

    def lookup(self, client_id: str, symbol: str | None = None) -> OrderReport | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        return self._report(row, self._fills([client_id]).get(client_id, []))

    def orders(self, symbols: Iterable[str] | None = None) -> list[OrderReport]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM orders ORDER BY seq").fetchall()
        if symbols is not None:
            wanted = set(symbols)
            rows = [r for r in rows if r[2] in wanted]
        by_order = self._fills(None)
        return [self._report(r, by_order.get(r[0], [])) for r in rows]

    def cancel(self, client_id: str, symbol: str | None = None) -> OrderReport:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            done = self._db.execute(
                f"UPDATE orders SET state = 'cancelled' WHERE client_id = ? AND state IN {_OPEN}", (client_id,)
            ).rowcount
        report = self.lookup(client_id)
        if report is None:
            raise BrokerRejected(f"paper: no order {client_id} to cancel")
        if not done:
            raise BrokerRejected(f"paper: order {client_id} is {report.state} and cannot be cancelled")
        return report

    # -- inspection (tests, metadata) -----------------------------------------------------------

    @property
    def duplicate_attempts(self) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = 'duplicate_attempts'").fetchone()
        return int(row[0]) if row else 0

    def client_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT client_id FROM orders ORDER BY seq")]

    # -- simulation -----------------------------------------------------------------------------

    def on_bars(self, bars: pl.DataFrame) -> int:
        """Fill open orders against ``bars`` (date, symbol, open, close, volume; bid/ask or spread_bps
        optional; earlier bars in the frame serve as history for ADV and vol). Returns the fills made."""
        missing = [c for c in ("date", "symbol", "open", "close", "volume") if c not in bars.columns]
        if missing:
            raise ExecutionError(f"paper broker bars: missing columns {missing}")
        c = self.config
        history = with_fill_stats(
            bars.sort("symbol", "date"),
            adv_window=c.adv_window,
            default_sigma=c.default_sigma,
            default_spread_bps=c.default_spread_bps,
        )
        by_symbol = {key[0]: part for key, part in history.partition_by("symbol", as_dict=True).items()}
        rows = self._db.execute(
            f"SELECT client_id, symbol, side, quantity, decision_date, filled, average_price, last_bar, bars_seen "
            f"FROM orders WHERE state IN {_OPEN} ORDER BY seq"
        ).fetchall()
        made = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for cid, symbol, side, qty, decision_date, filled, avg, last_bar, seen in rows:
                part = by_symbol.get(symbol)
                if part is None:
                    continue
                after = max(decision_date, last_bar or "")
                state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED
                for bar in part.filter(pl.col("date") > dt.date.fromisoformat(after)).iter_rows(named=True):
                    seen += 1
                    last_bar = bar["date"].isoformat()
                    cap = self.config.participation_cap * bar["volume"]
                    if float(qty).is_integer():  # a whole-unit order fills in whole units: positions stay on lots
                        cap = math.floor(cap)
                    q = min(qty - filled, cap)
                    if q > 0:
                        fill = self._fill(cid, Side(side), q, bar)
                        self._db.execute(
                            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                fill.fill_id,
                                cid,
                                last_bar,
                                fill.quantity,
                                fill.price,
                                fill.cost_bps,
                                fill.size_over_adv,
                                fill.spread_bps,
                                fill.sigma,
                                fill.participation,
                            ),
                        )
                        avg = ((avg or 0.0) * filled + fill.price * q) / (filled + q)
                        filled += q
                        made += 1
                    if filled >= qty * (1 - 1e-12):
                        filled, state = qty, OrderState.FILLED
                        break
                    state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED
                    if seen >= self.config.max_bars:
                        state = OrderState.EXPIRED
                        break
                self._db.execute(
                    "UPDATE orders SET state = ?, filled = ?, average_price = ?, last_bar = ?, bars_seen = ? "
                    "WHERE client_id = ?",
                    (state.value, filled, avg, last_bar, seen, cid),
                )
        return made

    def fill_now(self, client_id: str, fraction: float, price: float | None = None) -> OrderReport:
        """Fill ``fraction`` of an open order's rest immediately at ``price`` (default: its reference price):
        the fault injector's partial fill. No market features (not a training row)."""
        row = self._db.execute(
            f"SELECT quantity, filled, average_price, reference_price, state FROM orders WHERE client_id = ? "
            f"AND state IN {_OPEN}",
            (client_id,),
        ).fetchone()
        if row is None:
            raise BrokerRejected(f"paper: no open order {client_id}")
        qty, filled, avg, ref, _ = row
        q = (qty - filled) * fraction
        px = price if price is not None else ref
        new_filled = filled + q
        state = OrderState.FILLED if new_filled >= qty * (1 - 1e-12) else OrderState.PARTIALLY_FILLED
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("SELECT COUNT(*) FROM fills WHERE client_id = ?", (client_id,)).fetchone()[0]
            self._db.execute(
                "INSERT INTO fills (fill_id, client_id, date, quantity, price, cost_bps, size_over_adv, spread_bps, "
                "sigma, participation) VALUES (?, ?, '', ?, ?, NULL, NULL, NULL, NULL, NULL)",
                (f"{client_id}:now{n}", client_id, q, px),
            )
            self._db.execute(
                "UPDATE orders SET state = ?, filled = ?, average_price = ? WHERE client_id = ?",
                (state.value, new_filled, ((avg or 0.0) * filled + px * q) / new_filled, client_id),
            )
        report = self.lookup(client_id)
        assert report is not None
        return report

    def _fill(self, client_id: str, side: Side, q: float, bar: dict[str, Any]) -> Fill:
        c = self.config
        adv, sigma, spread = bar["_adv"], bar["_sigma"], bar["_spread_bps"]
        size = q / adv
        z = fill_noise(c.seed, client_id, bar["date"])
        cost = impact_cost_bps(size, sigma, spread, z, eta=c.eta, delta=c.delta, noise_scale=c.noise_scale)
        price = fill_price(bar["open"], side.sign, cost)
        return Fill(
            fill_id=f"{client_id}:{bar['date'].isoformat()}",
            client_id=client_id,
            quantity=q,
            price=price,
            date=bar["date"],
            cost_bps=cost,
            size_over_adv=size,
            spread_bps=spread,
            sigma=sigma,
            participation=q / bar["volume"],
        )

    # -- rows -----------------------------------------------------------------------------------

    def _fills(self, client_ids: list[str] | None) -> dict[str, list[Fill]]:
        query = "SELECT * FROM fills"
        args: tuple[Any, ...] = ()
        if client_ids is not None:
            query += f" WHERE client_id IN ({','.join('?' * len(client_ids))})"
            args = tuple(client_ids)
        out: dict[str, list[Fill]] = {}
        for fid, cid, date, q, px, cost, size, spread, sigma, part in self._db.execute(query + " ORDER BY rowid", args):
            featured = bool(date)
            out.setdefault(cid, []).append(
                Fill(
                    fid,
                    cid,
                    q,
                    px,
                    dt.date.fromisoformat(date) if featured else None,
                    cost if featured else None,
                    size if featured else None,
                    spread if featured else None,
                    sigma if featured else None,
                    part if featured else None,
                )
            )
        return out

    @staticmethod
    def _report(row: tuple[Any, ...], order_fills: list[Fill]) -> OrderReport:
        cid, boid, symbol, side, qty, state, filled, avg = row
        return OrderReport(cid, boid, symbol, Side(side), qty, OrderState(state), filled, avg, tuple(order_fills))


_COLUMNS = "client_id, 'paper-' || seq, symbol, side, quantity, state, filled, average_price"
