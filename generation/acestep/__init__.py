"""ACE-Step 1.5 cover: a second model family, with MIT-licensed weights.

Keeps a seed track's melody, rhythm and structure (as 5 Hz audio codes) and renders it in the
prompt's style, 48 kHz stereo, 10 s to 10 minutes in one pass, through diffusers' `AceStepPipeline`.
"""

from generation.acestep.engine import AceStepEngine
from generation.acestep.loading import LoadedAceStep, download_acestep, is_acestep_spec, load_acestep
from generation.acestep.params import LICENCE, CoverJob, CoverParams, Licence

__all__ = [
    "LICENCE",
    "AceStepEngine",
    "CoverJob",
    "CoverParams",
    "Licence",
    "LoadedAceStep",
    "download_acestep",
    "is_acestep_spec",
    "load_acestep",
]
