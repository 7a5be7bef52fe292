"""ISDA SIMM from CRIF, matching the Open Source Risk Engine (docs/simm.md)."""
