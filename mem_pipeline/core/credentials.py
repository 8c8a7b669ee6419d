"""Exchange credentials: read only from the environment, and masked in any text before it is raised or logged.

The ccxt source (market data) and the ccxt broker (orders) share them; neither ever writes them anywhere.
An exchange error may echo them, so callers keep only its masked text (``masked_error``) and raise their own
error *outside* the ``except`` block: raised inside it, even ``from None`` keeps the original exception as
``__context__``, where error trackers and tools walking the chain still read it.
"""

from __future__ import annotations

import os

API_KEY_ENV = "MEM_CCXT_API_KEY"
SECRET_ENV = "MEM_CCXT_SECRET"
MASK = "***"


def exchange_credentials() -> dict[str, str]:
    """ccxt's ``apiKey``/``secret`` options from the environment, only those that are set."""
    found = {"apiKey": os.environ.get(API_KEY_ENV), "secret": os.environ.get(SECRET_ENV)}
    return {key: value for key, value in found.items() if value}


def redact(text: str) -> str:
    """``text`` with any credential value from the environment masked (exchange errors may echo them)."""
    for value in exchange_credentials().values():
        text = text.replace(value, MASK)
    return text


def masked_error(exc: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` of ``exc`` with credentials masked: all of it a new error may carry."""
    return f"{type(exc).__name__}: {redact(str(exc))}"
