"""The stress lab: backtests, procyclicality, crash library, synthetic markets, cascade simulator, model comparison."""
