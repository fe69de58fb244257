"""Where jobs are generated, away from the event loop.

    pool.py     the interface the bot holds (`WorkerPool`), whichever backend `[workers]` picks
    runner.py   one batch: `WorkOrder` in, `WorkerEvents` out (`BatchRunner`, `Engines`)
    local.py    `GpuWorker`: one thread in the bot's process owns the GPU (the default)
    loading.py  how a model name becomes an engine (and the stem separator), picklable for Ray
    ray/        `RayPool`: one actor per GPU on a Ray cluster, each running the same `BatchRunner`

Nothing here touches Discord, the database or the data dir: orders arrive whole, events go out.
"""
