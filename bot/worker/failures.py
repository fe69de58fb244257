"""Why a job failed, in the words its channel may read: the worker's and the Ray actor's one rule."""

from __future__ import annotations

from generation.errors import ModelUnavailableError, RestyleError, StemsUnavailableError

# What a member is told when the server cannot load a model or the stem separator: their messages
# name the server's folders (a cache snapshot, a model directory), which the log keeps for the admin.
SERVER_SIDE = (ModelUnavailableError, StemsUnavailableError)
SERVER_SIDE_MESSAGE = "What this job needs could not be loaded on the server; the error has been logged."


def member_message(exc: Exception) -> str:
    """Why a job failed, as its channel may read it."""
    if isinstance(exc, SERVER_SIDE):
        return SERVER_SIDE_MESSAGE
    if isinstance(exc, RestyleError):
        return str(exc)
    return "Something went wrong while generating; the error has been logged."
