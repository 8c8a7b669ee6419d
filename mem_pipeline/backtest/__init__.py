"""Backtests: a vectorized engine for signal strategies (``signals``, ``crossover``) and the daily simulator
that fills target positions with the paper broker's cost law (``simulator``)."""
