"""Audio in and out, shared by every model family: decoding seeds (any container, allow-listed),
encoding results, loudness and fades, stem separation, and the chroma melody adherence is read from."""
