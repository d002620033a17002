"""Pushing to the Hub: a model folder or a results dataset, checked before any request."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from .results import save_results_dataset, validate_results_rows


def check_repo_id(repo_id: str) -> str:
    """Raise a `ValueError` naming the problem if `repo_id` cannot be a Hub repo id; return it unchanged otherwise.

    `"name"` (the token's user becomes the namespace) and `"namespace/name"` are accepted.
    """
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"repo_id must be a non-empty string like 'username/model-name', got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"Invalid repo_id {repo_id!r}: expected 'name' or 'namespace/name'. {err}") from err
    return repo_id


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    token: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload `folder` to its `main` branch in one commit; return the commit URL.
    The arguments are checked before any network call."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot push {folder}: not a directory")
    check_repo_id(repo_id)
    if repo_type not in constants.REPO_TYPES:
        raise ValueError(f"repo_type must be one of {constants.REPO_TYPES}, got {repo_type!r}")
    if constants.is_offline_mode():
        raise OfflineModeIsEnabled(
            f"Cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set. The folder is already in the Hub layout; "
            f"push it later with `hf upload {repo_id} {folder}"
            + (f" --repo-type {repo_type}" if repo_type != "model" else "")
            + "`."
        )
    api = HfApi(token=token)
    # The Hub fills in the namespace when `repo_id` has none: upload to the id it answers with.
    repo_id = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, repo_type=repo_type, commit_message=f"Upload {folder.name} with spac-hf"
    )
    return commit.commit_url


def push_results_dataset(
    rows: Iterable[Mapping[str, Any]],
    repo_id: str,
    *,
    local_dir: str | os.PathLike,
    dataset_name: str | None = None,
    description: str = "Evaluation results of SPAC, SPIN and DPO models trained with spac-hf.",
    private: bool | None = None,
    token: str | None = None,
) -> str:
    """Save the results dataset to `local_dir` (see [`save_results_dataset`]), then push it as a dataset repo.

    The rows and `repo_id` are checked before anything is written or sent. Returns the commit URL.
    """
    check_repo_id(repo_id)
    rows = validate_results_rows(rows)
    save_results_dataset(
        rows,
        local_dir,
        dataset_name=dataset_name or repo_id.split("/")[-1],
        description=description,
        repo_id=repo_id,
    )
    return push_folder(local_dir, repo_id, repo_type="dataset", private=private, token=token)
