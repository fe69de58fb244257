"""ACE-Step 1.5 cover: a second model family, with MIT-licensed weights.

Keeps a seed track's melody, rhythm and structure (as 5 Hz audio codes) and renders it in the
prompt's style, 48 kHz stereo, 10 s to 10 minutes in one pass, through diffusers' `AceStepPipeline`.
The family's facts and loaders are in `generation.acestep.family`; nothing is imported here, so
naming the family loads neither torch's kernels nor diffusers.
"""
