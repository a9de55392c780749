"""Walk-forward evaluation of the served analysis configuration on candle files, and the analysis speed benchmark.

Invariants: the evaluation makes the worker's calls (``app.analysis.served``: ``refit`` and ``analyse_served``) with
the worker's ``AnalysisOptions`` on what the worker would hold at each time (candles closed by then, tickers derived
from them); outcomes are read only after the analysis (``app.analysis.outcomes``). Reading candle files is the only
I/O; bad input raises ``DataError`` with a message fit for one line on stderr. This package init imports nothing heavy
(``app.cli`` imports it at startup; numpy/pandas load only when a command runs).
"""
