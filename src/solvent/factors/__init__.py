"""Margin add-ons beyond market risk, each a family of pure functions over arrays.

liquidity   solvent.factors.liquidity   close-out cost of net delta (book walk or square-root impact) and vega
concentration solvent.factors.concentration  SIMM-like CR or dYdX-like IMF ramp per asset; HHI; risk tier
"""
