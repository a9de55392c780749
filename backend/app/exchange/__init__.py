"""Market data from exchanges: the ``MarketSource`` protocol, its replay and ccxt implementations, our errors.

The only package that imports ccxt; everything it returns is a domain object and everything it raises is an
``ExchangeError``.
"""

from app.exchange.ccxt_source import CcxtSource, ExchangeFactory, supported_exchange_ids
from app.exchange.errors import (
    BadData,
    Banned,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    RetryBudgetSpent,
    SymbolNotFound,
    translate_ccxt_error,
)
from app.exchange.factory import build_source
from app.exchange.replay import ReplaySource
from app.exchange.retry import RetryPolicy, call_with_retries
from app.exchange.source import MarketSource, closed_only

__all__ = [
    "BadData",
    "Banned",
    "CcxtSource",
    "ExchangeError",
    "ExchangeFactory",
    "ExchangeUnavailable",
    "MarketSource",
    "RateLimited",
    "ReplaySource",
    "RetryBudgetSpent",
    "RetryPolicy",
    "SymbolNotFound",
    "build_source",
    "call_with_retries",
    "closed_only",
    "supported_exchange_ids",
    "translate_ccxt_error",
]
