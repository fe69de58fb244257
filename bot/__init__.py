"""Restyle's Discord front: /restyle, a fair queue to one GPU worker, progress, results and votes.

A thin front over `generation`: it checks, queues, shows and counts; the engine does the music.
Dependencies run one way (tests/test_layout.py keeps them so):

    client (the only wiring) -> cogs -> admission, lifecycle -> jobs, posting
        -> store, files, texts, views, checks -> models, replies, schema
    worker/ (the GPU, away from the event loop) is handed orders and reports through `WorkerEvents`.
"""
