"""Parameter governance: calibration proposals, step bounds and delays, dry-run diffs, the audit log, signals."""
