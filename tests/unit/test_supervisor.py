"""The supervisor (restart with backoff, readiness, give up past a bound) and the SQLSTATE table."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client import REGISTRY

from core import database, lifecycle
from core.errors import DatabaseUnavailable, DataRejected, StopRequested, TransientDatabaseError
from core.supervisor import Supervisor


def fast(stop: asyncio.Event, **bounds: float) -> Supervisor:
    return Supervisor(stop, base_delay=0.001, max_delay=0.01, **bounds)


async def test_a_failing_task_restarts_and_resumes_by_itself() -> None:
    stop = asyncio.Event()
    supervisor = fast(stop, healthy_after=0.05)
    runs = 0
    healed = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise OSError("disk full")
        healed.set()
        await stop.wait()

    before = REGISTRY.get_sample_value("conekta_task_failures_total", {"task": "flaky"}) or 0
    supervisor.run("flaky", flaky)
    await asyncio.wait_for(healed.wait(), 5)
    assert not supervisor.ready()  # failing until it has run a while
    assert REGISTRY.get_sample_value("conekta_task_failing", {"task": "flaky"}) == 1
    await asyncio.sleep(0.1)
    assert supervisor.ready() and supervisor.failing() == []
    assert REGISTRY.get_sample_value("conekta_task_failing", {"task": "flaky"}) == 0
    assert REGISTRY.get_sample_value("conekta_task_failures_total", {"task": "flaky"}) == before + 3
    stop.set()
    await supervisor.wait()
    assert supervisor.gave_up is None


async def test_a_task_failing_past_the_bound_stops_the_process() -> None:
    stop = asyncio.Event()
    supervisor = fast(stop, give_up_after=0.05)

    async def broken() -> None:
        raise RuntimeError("never works")

    async def healthy() -> None:
        await stop.wait()

    supervisor.run("broken", broken)
    supervisor.run("healthy", healthy)
    await asyncio.wait_for(supervisor.wait(), 5)
    assert stop.is_set() and supervisor.gave_up == "broken"


async def test_a_task_that_returns_is_done() -> None:
    supervisor = fast(asyncio.Event())
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    supervisor.run("once", once)
    await supervisor.wait()
    assert calls == 1 and supervisor.ready()
    with pytest.raises(ValueError, match="already"):
        supervisor.run("once", once)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (asyncpg.exceptions.DiskFullError("disk full"), DatabaseUnavailable),  # 53100
        (asyncpg.exceptions.OutOfMemoryError("oom"), DatabaseUnavailable),  # 53200
        (asyncpg.exceptions.ReadOnlySQLTransactionError("ro"), DatabaseUnavailable),  # 25006
        (asyncpg.exceptions.AdminShutdownError("bye"), DatabaseUnavailable),  # 57P01
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), DatabaseUnavailable),  # 08003
        (ConnectionResetError("reset"), DatabaseUnavailable),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), TransientDatabaseError),  # 40P01
        (asyncpg.exceptions.SerializationError("serial"), TransientDatabaseError),  # 40001
        (asyncpg.exceptions.LockNotAvailableError("lock"), TransientDatabaseError),  # 55P03
        (asyncpg.exceptions.QueryCanceledError("timeout"), TransientDatabaseError),  # 57014
        (asyncpg.exceptions.UniqueViolationError("dup"), DataRejected),  # 23505
        (asyncpg.exceptions.NumericValueOutOfRangeError("big"), DataRejected),  # 22003
        (asyncpg.exceptions.RaiseError("a trigger"), TransientDatabaseError),  # P0001: unknown
        (asyncpg.exceptions.UndefinedTableError("no table"), TransientDatabaseError),  # 42P01
    ],
)
def test_database_errors_are_classified_by_sqlstate(
    exc: BaseException, expected: type[BaseException]
) -> None:
    translated = database.translate(exc)
    assert type(translated) is expected
    if isinstance(exc, asyncpg.PostgresError):
        assert str(exc.sqlstate) in str(translated)


def test_errors_that_are_not_the_drivers_pass_through() -> None:
    error = ValueError("a bug")
    assert database.translate(error) is error


async def test_a_start_up_wait_ends_when_asked_to_stop() -> None:
    stop = asyncio.Event()
    started = asyncio.Event()

    async def wait_forever() -> int:
        started.set()
        await asyncio.Event().wait()
        return 1

    waiting = asyncio.create_task(lifecycle.unless_stopped(stop, wait_forever()))
    await started.wait()
    stop.set()
    with pytest.raises(StopRequested):
        await waiting
    assert await lifecycle.unless_stopped(stop, asyncio.sleep(0, result=7)) == 7


async def test_a_librarys_cancelled_error_is_a_failure_not_a_stop() -> None:
    """aiormq fails the futures of a dead connection with CancelledError: the task restarts
    (it used to end silently, and the worker then exited 1 on SIGTERM)."""
    stop = asyncio.Event()
    supervisor = fast(stop)
    runs = 0
    restarted = asyncio.Event()

    async def opens_a_channel_on_a_dead_connection() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            dead: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            dead.set_exception(asyncio.CancelledError())
            await dead
        restarted.set()
        await stop.wait()

    supervisor.run("channel", opens_a_channel_on_a_dead_connection)
    await asyncio.wait_for(restarted.wait(), 5)
    stop.set()
    await supervisor.wait()
    assert runs == 2 and supervisor.gave_up is None


async def test_a_task_that_does_not_stop_in_its_grace_is_cancelled() -> None:
    stop = asyncio.Event()
    supervisor = fast(stop)
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()  # a node that is gone

    supervisor.run("stuck", stuck)
    stop.set()
    await asyncio.wait_for(supervisor.wait(grace=0.05), 5)  # returns, raises nothing
    assert supervisor.gave_up is None


async def test_quietly_logs_a_close_that_fails() -> None:
    async def fails() -> None:
        raise asyncio.CancelledError  # as aiormq's close of a dead connection can

    await lifecycle.quietly("broker", fails())
