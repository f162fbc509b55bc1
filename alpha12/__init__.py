"""alpha12: watches ML trading-signal models per asset and timeframe and keeps them honest."""

__version__ = "0.1.0"
