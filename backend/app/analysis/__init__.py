"""Pure market analysis: indicators, ranking, support/resistance levels and market status (no I/O).

Imports only numpy, pandas and ``app.domain``. ``analyse`` is the entry point the worker calls.
"""

from app.analysis.engine import AnalysisError, analyse
from app.analysis.hazards import history_columns
from app.analysis.model_fit import FitSettings, fit_models, prior_model
from app.analysis.panel import FactorHistory, factor_history
from app.analysis.recommend import LiquidityGate

__all__ = [
    "AnalysisError",
    "FactorHistory",
    "FitSettings",
    "LiquidityGate",
    "analyse",
    "factor_history",
    "fit_models",
    "history_columns",
    "prior_model",
]
