"""The run: `run_self_play` and everything it keeps on disk.

- `loop.py`: `run_self_play`, validation then the iterations (generate, train, publish, evaluate);
- `preflight.py`: `validate_run`, every input checked before any compute or write, and the run's one frozen state;
- `identity.py`: what a run is (every option that changes results), its record read, compared and written;
- `folder.py`: `RunFolder`, every path of a run folder, checkpoints, and the rank rule;
- `integrity.py`: damaged files, named or discarded to be computed again, and what a kill leaves behind;
- `outputs.py`: `RunOutputs`, the one writer of what a run publishes (iterates, evaluations, cards, results, summary);
- `budget.py`: what a finished run spent, counted from its folder.

The modules here depend on the plugin and the records, never the other way. The public entry point stays
`from spac_hf import run_self_play`; nothing is re-exported here.
"""
