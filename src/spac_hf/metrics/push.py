"""Push a metric folder of `src/spac_hf/metrics/` to the Hub as a metric Space, with the real `huggingface_hub` client.

    python src/spac_hf/metrics/push.py src/spac_hf/metrics/review_reward --repo-id <namespace>/review_reward \
        [--private] [--token hf_...]

The folder is checked first (the metric script `<name>/<name>.py`, README.md with its YAML header, requirements.txt,
app.py, and every copy of spac-hf code it carries equal to the library's file), then the Space is created
(`repo_type="space"`, gradio SDK) if needed and the folder uploaded in one commit. Afterwards anyone can
`evaluate.load("<namespace>/review_reward")` without spac-hf installed. `HF_ENDPOINT` / `HF_TOKEN` are honoured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# The repository root (the metric folders sit in src/spac_hf/metrics/): the originals below are relative to it.
ROOT = Path(__file__).resolve().parents[3]
REQUIRED_FILES = ("README.md", "requirements.txt", "app.py")
# Files a metric carries from the library (the Space cannot import spac-hf; in the repository each is a link to the
# original, whose content an upload copies): metric -> {copy: original}.
VENDORED = {
    "review_reward": {"reviews.py": "src/spac_hf/tasks/reviews.py"},
}
IGNORE = ["__pycache__/*", "*.pyc", ".*"]


def check_metric_folder(folder: str | Path) -> Path:
    """Raise a `ValueError` naming what is wrong if `folder` is not a pushable metric Space; return it resolved."""
    folder = Path(folder).resolve()
    name = folder.name
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; pass a metric folder such as src/spac_hf/metrics/review_reward.")
    missing = [f for f in (f"{name}.py", *REQUIRED_FILES) if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a metric Space: missing {', '.join(missing)}.")
    if not (folder / "README.md").read_text(encoding="utf-8").startswith("---\n"):
        raise ValueError(f"{folder}/README.md needs the metric card's YAML header (a first line '---').")
    for copy, original in VENDORED.get(name, {}).items():
        if (folder / copy).read_bytes() != (ROOT / original).read_bytes():
            raise ValueError(
                f"{folder / copy} differs from {original}: the metric would not score as spac-hf does. "
                f"Link it again: `ln -sf ../../tasks/{Path(original).name} src/spac_hf/metrics/{name}/{copy}`."
            )
    return folder


def push_metric(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Create the Space `repo_id` (gradio SDK) if needed and upload the metric folder to it; return the commit URL."""
    from huggingface_hub import HfApi

    folder = check_metric_folder(folder)
    api = HfApi(token=token)
    # The Hub fills in the namespace when `repo_id` has none: upload to the id it answers with.
    repo_id = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True).repo_id
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="space",
        folder_path=folder,
        ignore_patterns=IGNORE,
        commit_message=f"Upload the {folder.name} metric with spac-hf",
    )
    return commit.commit_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the metric folder, e.g. src/spac_hf/metrics/review_reward")
    parser.add_argument("--repo-id", required=True, help="the Space to push to: 'name' or 'namespace/name'")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--token", default=None, help="a Hub token with write access (default: HF_TOKEN / login)")
    args = parser.parse_args(argv)
    try:
        url = push_metric(args.folder, args.repo_id, private=args.private or None, token=args.token)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"pushed {args.folder} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
