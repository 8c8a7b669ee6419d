"""Deterministic identifiers: the same decision, symbol and slice always give the same client order id."""

from __future__ import annotations

import hashlib

#: Every client order id MEM sends starts with this; reconciliation adopts broker orders carrying it.
CLIENT_ID_PREFIX = "mem"
_HEX = 24  # 96 bits: collisions are negligible; "mem" + 24 = 27 chars, under binance's 36 (alnum only)


def _digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)  # unit separator: ("a|b", "c") and ("a", "b|c") differ
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def client_order_id(decision_version: str, symbol: str, slice_index: int) -> str:
    """``"mem" + 24 hex of sha256(version, symbol, slice)``: 27 characters, letters and digits only."""
    if slice_index < 0:
        raise ValueError(f"slice_index must be >= 0, got {slice_index}")
    return CLIENT_ID_PREFIX + _digest("child", decision_version, symbol, int(slice_index))[:_HEX]


def is_mem_client_id(client_id: str | None) -> bool:
    return bool(client_id) and str(client_id).startswith(CLIENT_ID_PREFIX) and len(str(client_id)) == 3 + _HEX
