"""Cost benchmark: SPACTrainer's step against TRL's DPOTrainer's.

Run from the repository root: `python -m benchmarks.cost.run` (its README says what it measures).
"""
