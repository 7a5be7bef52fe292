"""Portable, versioned file formats: msgspec schemas, JSON / Parquet readers and writers."""
