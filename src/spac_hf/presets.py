"""Named SPAC settings: the paper's practical ones (the library's defaults) and the ones the theory asks for.

The recipes select a preset by file (`recipes/<setup>/spac_theory.yaml` beside `spac.yaml`); the theory benchmark
(`benchmarks/theory`) reads the values from here, and a test checks that every `spac_theory.yaml` agrees with them.
Kept free of heavy imports so the benchmarks can read it without loading TRL.

Evidence (benchmarks/theory, 20 seeds, exact expectations; docs/algorithm.md "Which settings"):
- `beta = 1`: the mirror-descent step eta = 1 / beta. With the critic (nearly) solved every iteration, beta = 0.1 is a
  step of 10 and each iterate is almost greedy on a noisy critic.
- `num_iterations = 10` with `iteration_data = "full"`: many small steps on all the data. T / beta = 10 is the 1 / beta
  of a DPO with beta 0.1: with the pessimism term off, T solved iterations of DPO at beta from pi_t compose to one DPO
  at beta / T (pi_{T+1} = pi_1 exp(T r_hat / beta) / Z), so the preset changes the pessimism, not the total step.
- `lam = 0.1` with `lam_scaling = "sqrt_n"`: lambda = 0.1 sqrt(n) grows like sqrt(n), as the theory's lambda does; a
  fixed lambda keeps the pessimism term's pull at every n and costs accuracy once data is plentiful.
- output: the uniform mixture of the iterates (`spac_hf.mixture`), the policy Algorithm 1's guarantee is about.
"""

from __future__ import annotations


PAPER_PRESET = {"beta": 0.1, "lam": 1.0, "lam_scaling": "constant", "iteration_data": "split", "num_iterations": 3}
THEORY_PRESET = {"beta": 1.0, "lam": 0.1, "lam_scaling": "sqrt_n", "iteration_data": "full", "num_iterations": 10}
THEORY_OUTPUT = "mixture"  # the theory's output policy: one iterate sampled per prompt (spac_hf.mixture)
PRESETS = {"paper": PAPER_PRESET, "theory": THEORY_PRESET}
