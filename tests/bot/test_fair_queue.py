"""The fair queue on its own: turns, limits, batches, and the worker's blocking take."""

from __future__ import annotations

import threading
import time

import pytest

from bot.fair_queue import FairQueue, QueuedJob, QueueFull


def job(job_id: int, user: int, rows: int = 1, key: str = "a") -> QueuedJob:
    return QueuedJob(job_id, user, rows, key, steps=100)


def drain(queue: FairQueue, max_rows: int = 1) -> list[list[int]]:
    stop = threading.Event()
    taken = []
    while len(queue):
        taken.append([j.job_id for j in queue.take(max_rows, stop)])
    return taken


def test_least_recently_served_goes_first():
    queue = FairQueue(max_size=10)
    for job_id in (1, 2, 3):
        queue.push(job(job_id, user=100))
    queue.push(job(4, user=200))
    queue.push(job(5, user=300))
    assert [j.job_id for j in queue.ordered()] == [1, 4, 5, 2, 3]
    assert drain(queue) == [[1], [4], [5], [2], [3]]


def test_a_newcomer_goes_before_someone_already_served():
    queue = FairQueue(max_size=10)
    queue.push(job(1, user=100))
    queue.push(job(2, user=100))
    assert [j.job_id for j in queue.take(1, threading.Event())] == [1]  # alice's first job starts
    queue.push(job(3, user=200))  # bob arrives while alice's second waits
    assert [j.job_id for j in queue.ordered()] == [3, 2]


def test_an_interrupted_job_goes_first():
    queue = FairQueue(max_size=10)
    queue.push(job(7, user=100))
    queue.push(job(5, user=200), first=True)
    assert queue.position(5) == 1 and queue.position(7) == 2


def test_a_job_put_back_first_runs_next_even_if_its_owner_was_just_served():
    queue = FairQueue(max_size=10)
    queue.push(job(1, user=100))
    queue.push(job(2, user=200))
    assert [j.job_id for j in queue.take(1, threading.Event())] == [1]  # alice was just served...
    queue.push(job(1, user=100), first=True, recovered=True)  # ...and her worker died under it
    assert [j.job_id for j in queue.ordered()] == [1, 2]
    assert [j.job_id for j in queue.take(1, threading.Event())] == [1]


def test_limits_removal_and_counts():
    queue = FairQueue(max_size=2)
    queue.push(job(1, user=100))
    queue.push(job(2, user=100))
    with pytest.raises(QueueFull):
        queue.push(job(3, user=200))
    assert queue.count_for(100) == 2 and queue.count_for(200) == 0
    assert queue.remove(1).job_id == 1 and queue.remove(1) is None
    assert len(queue) == 1 and queue.position(2) == 1 and queue.position(1) is None


def test_compatible_jobs_ride_along_within_the_row_budget():
    queue = FairQueue(max_size=10)
    queue.push(job(1, user=100, rows=2, key="30s"))
    queue.push(job(2, user=200, rows=4, key="30s"))
    queue.push(job(3, user=300, rows=1, key="60s"))
    queue.push(job(4, user=400, rows=2, key="30s"))
    assert drain(queue, max_rows=6) == [[1, 2], [3], [4]]


def test_take_blocks_until_a_job_arrives_and_stops_when_told():
    queue, stop = FairQueue(max_size=10), threading.Event()
    got: list = []
    taker = threading.Thread(target=lambda: got.append(queue.take(4, stop)))
    taker.start()
    time.sleep(0.05)
    assert got == []
    queue.push(job(9, user=1))
    taker.join(2)
    assert [j.job_id for j in got[0]] == [9]

    waiting = threading.Thread(target=lambda: got.append(queue.take(4, stop)))
    waiting.start()
    stop.set()
    queue.wake()
    waiting.join(2)
    assert got[1] == [] and not waiting.is_alive()


def test_riders_are_chosen_in_the_same_fair_order_as_the_head():
    queue = FairQueue(max_size=20)
    for job_id in range(1, 7):  # alice queued six jobs before anyone else
        queue.push(job(job_id, user=100, rows=2))
    queue.push(job(7, user=200, rows=2))  # bob's only job
    queue.push(job(8, user=300, rows=2))  # carol's only job
    fair = [j.job_id for j in queue.ordered()]
    assert fair == [1, 7, 8, 2, 3, 4, 5, 6]
    batches = drain(queue, max_rows=4)
    assert batches == [[1, 7], [8, 2], [3, 4], [5, 6]]
    assert [job_id for batch in batches for job_id in batch] == fair  # batching keeps the fair turns


def test_a_rider_that_does_not_fit_leaves_room_for_the_next_fair_one():
    queue = FairQueue(max_size=20)
    queue.push(job(1, user=100, rows=2))
    queue.push(job(2, user=100, rows=2))
    queue.push(job(3, user=200, rows=4))  # too big to ride with job 1
    queue.push(job(4, user=300, rows=1, key="other"))  # cannot share a batch
    queue.push(job(5, user=400, rows=2))
    assert [j.job_id for j in queue.take(4, threading.Event())] == [1, 5]


def test_a_recovered_job_is_never_refused():
    queue = FairQueue(max_size=1)
    queue.push(job(1, user=100))
    with pytest.raises(QueueFull):
        queue.push(job(2, user=200))
    queue.push(job(2, user=200), recovered=True)  # rebuilt from the database: it was accepted before
    assert [queued.job_id for queued in queue.ordered()] == [1, 2]
