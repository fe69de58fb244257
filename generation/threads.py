"""How many threads torch and the helper pools get, chosen together so they never oversubscribe.

torch's default is one intra-op thread per core, each spinning while it waits for the others. Next
to a finishing thread (mastering, encoding) or any other busy process, one of them is always
descheduled and the rest spin waiting for it: the same 20 s job took 304 s instead of 33 s at load
8.7 on this project's 2-core machine. So torch gets the cores the finishing work leaves free (at
least one), one inter-op thread (nothing here runs independent ops in parallel), and the seed decode
pool stays small. `--threads N` (command line) or `models.threads` (bot) overrides the count.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadPlan:
    torch_threads: int  # intra-op: matrix products, convolutions
    interop_threads: int
    decode_workers: int  # a pool decoding seeds beside generation (the bot's uploads)


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def plan_threads(
    requested: int | None = None, *, finishing: bool = True, cores: int | None = None
) -> ThreadPlan:
    """`requested` torch threads if given; else the cores minus one for a finishing thread."""
    cores = cores or available_cores()
    if requested is not None:
        if requested < 1:
            raise ValueError("the thread count must be at least 1")
        torch_threads = requested
    else:
        torch_threads = max(1, cores - 1 if finishing else cores)
    return ThreadPlan(torch_threads, 1, max(1, min(2, cores // 2)))


def apply_threads(plan: ThreadPlan) -> None:
    """Set torch's pools; call once, before the first torch operation."""
    import torch

    torch.set_num_threads(plan.torch_threads)
    try:
        torch.set_num_interop_threads(plan.interop_threads)
    except RuntimeError:  # already set, or torch already ran parallel work: keep what is there
        log.debug("torch's inter-op threads were already set")
    log.info("torch uses %d thread(s), %d inter-op", plan.torch_threads, plan.interop_threads)
