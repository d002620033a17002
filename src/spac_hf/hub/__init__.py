"""Hub publishing, split by what is published: model cards, results datasets, and pushes.

What goes where:

- **Model folder** (one per saved iterate, e.g. `output_dir/iter_2`): what `save_pretrained` wrote (config, weights
  as safetensors, tokenizer), plus a `README.md` from [`save_model_card`] (`cards.py`). The card's YAML carries the
  Hub metadata (`base_model`, `datasets`, `library_name`, the method's `tags` (the same as the trainer's
  `_tag_names`), `license`, and `model-index` when evaluation results exist); its body says which iterate of which
  method this is, lists the hyperparameters, shows how to load the model, tabulates the evaluation results and gives
  the BibTeX to cite (from `spac_hf.methods`).
- **Results dataset folder** (from [`save_results_dataset`], `results.py`): `data/results.jsonl`, one row per (model,
  task, metric, num_fewshot), and a `README.md` dataset card whose YAML `configs` points at that file and whose
  `dataset_info` fixes the column types, so `datasets.load_dataset(folder)` and the Hub's viewer read it the same way.
- **Pushing** ([`push_folder`], [`push_results_dataset`], `push.py`): `create_repo(exist_ok=True)`, then
  `upload_folder` of the local folder as it is. Offline, nothing is pushed and the folders above are the whole
  result, already in the layout the Hub expects; pushing them later (`push_folder` or `hf upload`) uploads exactly the
  files that were checked locally.

Everything goes through the public `huggingface_hub` API (`ModelCard`, `ModelCardData`, `EvalResult`, `DatasetCard`,
`HfApi`). The `HfApi` client is created at call time, so the endpoint and token in effect when a function is called are
the ones used.
"""

from .cards import build_model_card, save_model_card, save_trainer_card
from .push import check_repo_id, push_folder, push_results_dataset
from .results import RESULT_COLUMNS, results_dataset_rows, save_results_dataset, validate_results_rows


__all__ = [
    "RESULT_COLUMNS",
    "build_model_card",
    "check_repo_id",
    "push_folder",
    "push_results_dataset",
    "results_dataset_rows",
    "save_model_card",
    "save_trainer_card",
    "save_results_dataset",
    "validate_results_rows",
]
