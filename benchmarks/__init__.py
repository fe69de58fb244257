"""Speed and memory figures for Restyle, measured as ratios taken in one run (run: python -m benchmarks).

Nothing here is a test: the machine is shared and noisy, so figures are recorded, with the machine
they came from, in benchmarks/RESULTS.md, never asserted.
"""
