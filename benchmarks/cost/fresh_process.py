"""Run a function in a new process, one process per call, with the heavy imports already done.

A fork server imports torch, transformers, TRL and spac-hf once; each call forks a new child from it (a one-worker
pool used for that call only), which runs the task and exits. The child starts from a clean heap (nothing the
benchmark's main process allocated), which is what a peak-memory reading and an end-to-end iteration timing need,
without paying ~6 s of imports per call.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing


_PRELOAD = [
    "torch", "transformers", "datasets", "trl", "spac_hf.trainer", "spac_hf.generation",
    "benchmarks.cost.memory", "benchmarks.cost.iteration_share",
]  # fmt: skip


class FreshProcesses:
    def __init__(self):
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)

    def run(self, fn, *args, **kwargs):
        """`fn(*args, **kwargs)` in a new child process; `fn` must be a module-level function."""
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=self._context) as pool:
            return pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        """Nothing to release: each call's pool is shut down when the call returns (the fork server exits with us)."""

    def __enter__(self) -> FreshProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
