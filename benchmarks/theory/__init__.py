"""Theory benchmark: DPO, SPIN, SPAC and Algorithm 1 on contextual bandits with exact expectations, under the
fair-comparison protocol (`benchmarks.protocol`).

Run from the repository root: `python -m benchmarks.theory.run` (its README says what it measures).
"""
