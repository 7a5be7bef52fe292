"""The deterministic streaming engine: feed records in, margin state and events out (DESIGN.md)."""
