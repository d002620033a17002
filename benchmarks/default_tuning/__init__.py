"""Default tuning: how the embedded default's learning rate, epochs and beta were chosen.

Run from the repository root: `python -m benchmarks.default_tuning.run` (its README says what it measures).
"""
