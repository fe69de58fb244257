"""The Hugging Face hub, asked as little and as quickly as possible.

The cache is looked at first and nothing else happens while offline (`--offline`, `offline = true`
or HF_HUB_OFFLINE=1). Before a download, one request without retries says whether the hub can be
reached at all and which files the commit holds: huggingface_hub's own loop retries a refused
connection five times with a warning each (25 s), which is no way to say "no network". Only
safetensors and small metadata files are ever fetched: never pickled weights (`.bin`, `.th`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from generation.errors import ModelUnavailableError

log = logging.getLogger(__name__)

METADATA_PATTERNS = ("*.json", "*.model", "*.txt", "*.yaml")
WEIGHT_PATTERN = "*.safetensors"
PROBE_TIMEOUT_S = 10.0


def prepare_environment() -> None:
    """Call before huggingface_hub is imported: it reads its settings once, at import.

    Telemetry off: besides saying nothing about the machine, it spares a request (for the list of
    "agent harnesses" it reports in its user agent) that waits 3 s on a network that drops packets.
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class HubUnreachableError(ModelUnavailableError):
    """The hub could not be asked: no network, DNS, a proxy or the hub itself down."""


def is_offline(asked: bool = False) -> bool:
    from huggingface_hub import constants

    return asked or bool(constants.HF_HUB_OFFLINE)


def cached_snapshot(
    repo: str,
    revision: str,
    cache_dir: str | Path | None,
    needs: Sequence[str],
    patterns: Sequence[str] | None = None,
) -> Path | None:
    """The cached folder of `repo` at `revision` if it holds a file matching each of `needs`.

    `patterns` are those it was downloaded with (default: metadata and safetensors): the hub client
    calls a snapshot incomplete if a file they match on the hub is not in the cache."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                repo,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=True,
                allow_patterns=list(patterns or (*METADATA_PATTERNS, WEIGHT_PATTERN)),
            )
        )
    except Exception:
        return None
    return folder if all(any(folder.glob(pattern)) for pattern in needs) else None


def repo_files(repo: str, revision: str) -> list[str]:
    """The file names of `repo` at `revision`, in one request; raises a one-line error otherwise."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo, revision=revision, timeout=PROBE_TIMEOUT_S)
    except RevisionNotFoundError:
        raise ModelUnavailableError(f"{repo} has no revision {revision} on the Hugging Face hub.") from None
    except RepositoryNotFoundError:
        raise ModelUnavailableError(
            f"There is no model {repo} on the Hugging Face hub (or it is private)."
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubUnreachableError(
            f"The Hugging Face hub refused the request for {repo} (HTTP {status})."
        ) from None
    except Exception as exc:
        raise HubUnreachableError(
            f"Restyle cannot reach the Hugging Face hub ({type(exc).__name__}): check the network."
        ) from None
    return [sibling.rfilename for sibling in info.siblings or []]


def fetch(repo: str, revision: str, cache_dir: str | Path | None, files: Sequence[str] | None = None) -> Path:
    """Download `files` (default: metadata and safetensors) of `repo` at `revision` into the cache.

    Refuses a commit without safetensors before anything is downloaded.
    """
    from huggingface_hub import snapshot_download

    listed = repo_files(repo, revision)
    if not any(name.endswith(".safetensors") for name in listed):
        raise ModelUnavailableError(
            f"{repo} at {revision} has no safetensors weights; Restyle does not load pickled "
            "(.bin) weights, which can run code when opened."
        )
    patterns = list(files) if files else [*METADATA_PATTERNS, WEIGHT_PATTERN]
    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache_dir, allow_patterns=patterns))
    except Exception as exc:
        raise ModelUnavailableError(
            f"Downloading {repo} failed ({type(exc).__name__}); run it again."
        ) from exc
