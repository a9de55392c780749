"""Walk-forward evaluation of the analysis on candle files, and the analysis speed benchmark.

Invariants: the evaluation calls exactly ``app.analysis.analyse`` (the code the worker runs) on candles that closed
at or before each evaluation time; forward returns are read only after that call. Reading candle files is the only
I/O; bad input raises ``DataError`` with a message fit for one line on stderr. This package init imports nothing heavy
(``app.cli`` imports it at startup; numpy/pandas load only when a command runs).
"""
