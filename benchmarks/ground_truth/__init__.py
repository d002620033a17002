"""Ground-truth benchmark: SFT, DPO, iterative DPO, SPIN and SPAC on a task with a programmatic reward.

Run from the repository root: `python -m benchmarks.ground_truth.run` (its README says what it measures).
"""
