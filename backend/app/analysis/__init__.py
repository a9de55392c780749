"""Pure market analysis: indicators, ranking, support/resistance levels and market status (no I/O).

Imports only numpy, pandas and ``app.domain``. ``analyse`` is the entry point the worker calls.
"""

from app.analysis.engine import AnalysisError, analyse
from app.analysis.factors import FactorWeights
from app.analysis.recommend import LiquidityGate

__all__ = ["AnalysisError", "FactorWeights", "LiquidityGate", "analyse"]
