"""Leaderboard benchmark: Open LLM Leaderboard v1 / v2 on the iterates of SPAC, SPIN and DPO.

Run from the repository root: `python -m benchmarks.leaderboard.run` (its README says what it measures).
"""
