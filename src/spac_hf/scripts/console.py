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

Silencing transformers lowers its logging level, and transformers decides a config's `disable_tqdm` default from that
level when the config is made: `library_defaults` parses a recipe's options at transformers' default level, so a
second run in the same process (`spac-hf compare`) keeps its training bar and prints no metric dicts. One process
prints no `[RANK 0]` prefix (accelerate's logger adds it to every line; it tells something only with several).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def library_defaults() -> Iterator[None]:
    """transformers' default logging level for the duration (a config's defaults depend on it), then the caller's."""
    import transformers

    before = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_warning()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(before)


class _NoRankPrefixOnOneProcess(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from accelerate import PartialState

        one_process = PartialState._shared_state == {} or PartialState().num_processes == 1
        if one_process and isinstance(record.msg, str) and record.msg.startswith("[RANK 0] "):
            record.msg = record.msg.removeprefix("[RANK 0] ")
        return True


def console_logging() -> None:
    """What a run prints: time, level, logger and message; the library's progress at INFO (main process only)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("spac_hf").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NoRankPrefixOnOneProcess) for f in handler.filters):
            handler.addFilter(_NoRankPrefixOnOneProcess())


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
