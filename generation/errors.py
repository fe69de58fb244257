"""Errors whose message is meant for the person who asked: one line, no traceback.

Every front (command line, Discord) shows `str(error)` of a `RestyleError` as it is and nothing
else, so each message must make sense on its own and say what to do where that is possible.
"""


class RestyleError(Exception):
    """Base of the errors a user may see. The message is one human-readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class AudioInputError(RestyleError):
    """The seed file cannot be used: empty, not audio, damaged, too long, silent..."""


class InvalidRequestError(RestyleError):
    """An option is out of range (duration, candidates, seed, prompt...)."""


class ModelUnavailableError(RestyleError):
    """The model cannot be loaded: unknown name, not cached while offline, wrong kind."""


class ModelNotCachedError(ModelUnavailableError):
    """A model that exists is not in the cache, and cannot be fetched now (offline, no network)."""


class StemsUnavailableError(RestyleError):
    """Stem separation was asked for but demucs or its weights are not available."""


class OutputWriteError(RestyleError):
    """An output could not be written (a full disk, a folder gone read-only): nothing of it is kept."""


class DeviceFailedError(RestyleError):
    """The accelerator failed in a way that outlives the job (a device-side assert, say) or has
    too little memory even for one candidate; the engine is marked broken when it must be rebuilt."""


class GenerationCancelled(RestyleError):
    """The cancel token was set; generation stopped at the next step."""

    def __init__(self, message: str = "The job was cancelled.") -> None:
        super().__init__(message)
