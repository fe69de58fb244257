"""Restyle's Discord front: /restyle, a fair queue to one GPU worker, progress, results and votes.

A thin front over `generation`: it checks, queues, shows and counts; the engine does the music.
"""
