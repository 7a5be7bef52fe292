"""Market data: the market state as arrays, volatility estimators, price history."""
