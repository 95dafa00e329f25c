"""`--push-to-hub`: a model folder uploaded to a Hub model repo, without training state."""
from __future__ import annotations

from pathlib import Path

UPLOAD_IGNORE = [".train/*", "*.pt", "*.tmp", "eval-*/*", ".cache/*"]


class PushError(RuntimeError):
    """Uploading the model folder to the Hub failed; the message says why and how to retry."""


def push_folder(folder: Path, repo_id: str) -> str:
    """Create the model repo if needed and upload the folder (without training state)."""
    from huggingface_hub import HfApi, get_token

    retry = f"The model is saved in {folder}; upload it later with `hf upload {repo_id} {folder} .`."
    if not get_token():
        raise PushError(f"--push-to-hub {repo_id}: no Hugging Face token found. Run `hf auth login` or set "
                        f"HF_TOKEN (a token with write access). {retry}")
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          ignore_patterns=UPLOAD_IGNORE, commit_message="Upload model trained with finetune")
    except Exception as err:  # noqa: BLE001 - network, permission, offline mode: one clear message
        raise PushError(f"--push-to-hub {repo_id}: upload failed ({err.__class__.__name__}: {err}). {retry}") \
            from err
    return f"https://huggingface.co/{repo_id}"
