"""MusicGen-melody: the first model family (CC-BY-NC 4.0 weights).

Models and their precision, the windows a long piece is cut into, the per-candidate sampler, the
decoding backends and EnCodec, and the engine that drives them. Nothing here is imported on import
of the package: `restyle --help` stays instant.
"""
