"""Conversions between the file formats and the engine's types, above both (docs/architecture.md)."""
