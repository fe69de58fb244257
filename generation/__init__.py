"""Restyle's engine: seed track and style prompt in, candidate tracks that keep the melody out.

It knows audio, tensors and models, and nothing of Discord or event loops: `bot/` and the
`restyle` command line are fronts over it.
"""
