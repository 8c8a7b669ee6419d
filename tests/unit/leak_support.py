"""Checks that an exception and the logs carry no credential: every text a handler, Dagster or a person could see."""

from __future__ import annotations

import logging
import traceback

import pytest


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` / ``__context__`` (suppressed or not)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
    return seen


def leaked_texts(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[str]:
    """str/repr of each exception in the chain, the full formatted traceback, and every captured log line
    (message, formatted record with its exception text, and ``caplog.text``)."""
    texts = [t for e in exception_chain(exc) for t in (str(e), repr(e), repr(e.args))]
    texts.append("".join(traceback.format_exception(exc)))
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    texts += [r.getMessage() for r in caplog.records] + [formatter.format(r) for r in caplog.records]
    texts.append(caplog.text)
    return texts


def assert_no_secret(exc: BaseException, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    texts = leaked_texts(exc, caplog)
    for secret in secrets:
        hits = [t for t in texts if secret in t]
        assert not hits, f"{secret!r} leaked in: {hits[0][:500]}"
