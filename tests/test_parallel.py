"""The task runner: the same results whether tasks run here, on local processes or on a Dask cluster."""

import os
import time

import pytest

from nanofind._parallel import cached_in_process, forget_in_process, run_tasks
from nanofind.errors import NanofindInputError


def _square_after(x: int, delay_s: float) -> tuple[int, int]:
    time.sleep(delay_s)
    return x * x, os.getpid()


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"task {x} is bad")
    return -x


def _threads_seen() -> tuple[str | None, int]:
    from nanofind.learn.engine import compute_threads

    return os.environ.get("OMP_NUM_THREADS"), compute_threads()


@pytest.fixture(params=["here", "processes", "dask"])
def mode(request):
    if request.param == "here":
        return {"workers": 1}
    if request.param == "processes":
        return {"workers": 2}
    return {"scheduler": request.getfixturevalue("dask_cluster").scheduler_address}


def test_every_task_once_whatever_the_order_of_finishing(mode):
    # the first task is the slowest: where tasks run side by side it finishes last, not first
    tasks = [(0, 1.5)] + [(x, 0.0) for x in range(1, 6)]
    got = list(run_tasks(_square_after, tasks, **mode))
    assert sorted(i for i, _ in got) == list(range(6))
    assert all(result[0] == tasks[i][0] ** 2 for i, result in got)
    if mode.get("workers", 2) > 1:
        assert got[0][0] != 0
    else:
        assert [i for i, _ in got] == list(range(6))  # in this process, in order
    pids = {result[1] for _, result in got}
    if mode.get("workers") == 2:
        assert len(pids) == 2 and os.getpid() not in pids  # two worker processes did the work
    else:
        assert pids == {os.getpid()}  # here, or the in-process cluster's threads


def test_a_failing_task_is_reported_with_its_index_or_raised(mode):
    tasks = [(x,) for x in range(6)]
    got = dict(run_tasks(_fails_on_three, tasks, return_exceptions=True, **mode))
    assert set(got) == set(range(6))
    assert isinstance(got[3], ValueError) and "task 3 is bad" in str(got[3])
    assert all(got[x] == -x for x in range(6) if x != 3)
    with pytest.raises(ValueError, match="task 3 is bad"):
        list(run_tasks(_fails_on_three, tasks, **mode))


def test_local_workers_share_the_cpus_out():
    tasks = [()] * 4
    for _, (env, threads) in run_tasks(_threads_seen, tasks, workers=2, threads_per_worker=1):
        assert env == "1" and threads == 1  # the network's thread count follows


def test_bad_scheduler_or_worker_count_is_one_line_naming_the_option():
    for address in ("tcp://127.0.0.1:1", "no-port-here"):
        with pytest.raises(NanofindInputError) as info:
            list(run_tasks(_square_after, [(1, 0.0)], scheduler=address, connect_timeout_s=1))
        assert info.value.field == "--scheduler" and address in str(info.value)
        assert len(str(info.value).splitlines()) == 1
    with pytest.raises(NanofindInputError, match="--workers"):
        list(run_tasks(_square_after, [(1, 0.0)], workers=0))


def test_nothing_to_do_starts_nothing():
    assert list(run_tasks(_square_after, [], workers=2, scheduler="tcp://127.0.0.1:1")) == []


def test_process_cache_is_made_once_per_key():
    made = []

    def make(tag):
        made.append(tag)
        return object()

    try:
        a = cached_in_process("test-slot", ("model", 1), lambda: make("a"))
        assert cached_in_process("test-slot", ("model", 1), lambda: make("b")) is a
        c = cached_in_process("test-slot", ("model", 2), lambda: make("c"))
        assert c is not a and made == ["a", "c"]
        forget_in_process("test-slot")
        assert cached_in_process("test-slot", ("model", 2), lambda: make("d")) is not c
    finally:
        forget_in_process("test-slot")


def test_a_connected_client_is_used_and_left_open(dask_cluster):
    from distributed import Client

    with Client(dask_cluster) as client:
        got = dict(run_tasks(_square_after, [(x, 0.0) for x in range(4)], scheduler=client))
        assert {i: r[0] for i, r in got.items()} == {0: 0, 1: 1, 2: 4, 3: 9}
        assert client.status == "running" and client.submit(abs, -2).result() == 2


def test_a_client_whose_event_loop_was_slow_to_start_is_started_again(monkeypatch):
    import distributed

    from nanofind import _parallel

    starts = []

    class SlowFirstClient:
        """Fails as distributed does when its event-loop thread misses the 10 s start, the first time only."""

        def __init__(self, address, timeout):
            starts.append(address)
            assert len(starts) > 1

    monkeypatch.setattr(distributed, "Client", SlowFirstClient)
    client, opened = _parallel._connect("tcp://127.0.0.1:1", 5.0)
    assert isinstance(client, SlowFirstClient) and opened and len(starts) == 2

    class NeverClient:
        def __init__(self, address, timeout):
            starts.append(address)
            raise AssertionError

    starts.clear()
    monkeypatch.setattr(distributed, "Client", NeverClient)
    with pytest.raises(NanofindInputError, match="event loop did not start"):
        _parallel._connect("tcp://127.0.0.1:1", 5.0)
    assert len(starts) == _parallel.CLIENT_START_ATTEMPTS
