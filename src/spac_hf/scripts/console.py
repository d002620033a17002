"""What the recipes print: one line per phase (generation, reference log-probs, training, evaluation) with a
progress bar for the long ones, and nothing the user cannot act on.

Silenced, each for a reason:
- `datasets`' bars ("Flattening the indices", "Saving the dataset", "Tokenizing ...", "Adding EOS ..."): internal
  steps of a few milliseconds each on this data, dozens of lines per iteration;
- transformers' "Loading weights" / "Writing model shards" bars: one per saved or loaded model;
- transformers' `is_gradient_checkpointing` FutureWarning: raised inside TRL's trainer, not by anything a recipe
  user wrote or can change;
- the Trainer's metric dicts printed under the training bar: the metrics go to the trackers of `report_to`
  (`--report_to tensorboard`), the iterate's `iterate.json` and the run's `summary.md`.
The training bar, TRL's "Computing reference log probs" bar and spac-hf's generation and scoring bars stay.
"""

from __future__ import annotations

import warnings


def quiet_libraries() -> None:
    import datasets
    import transformers
    from transformers.trainer_callback import ProgressCallback

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    # The bar stays; its printed copy of every log dict goes (the Trainer still sends them to `report_to`).
    ProgressCallback.on_log = _no_printed_metrics


def _no_printed_metrics(self, args, state, control, logs=None, **kwargs) -> None:
    return None
