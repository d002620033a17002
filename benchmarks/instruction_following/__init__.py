"""Instruction following on real prompts: SFT vs DPO vs iterative DPO vs SPIN vs SPAC.

Run from the repository root: `python -m benchmarks.instruction_following.run` (its README says what it measures).
"""
