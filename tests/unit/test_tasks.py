"""backhaul.tasks.TaskSet: tasks kept until they end, waited for, cancelled."""
import asyncio

from backhaul.tasks import TaskSet


async def test_a_task_is_kept_until_it_ends_then_forgotten():
    tasks = TaskSet()
    gate = asyncio.Event()
    task = tasks.start(gate.wait())
    assert len(tasks) == 1
    gate.set()
    await tasks.wait()
    assert task.done() and len(tasks) == 0


async def test_wait_returns_after_the_timeout_while_a_task_still_runs():
    tasks = TaskSet()
    task = tasks.start(asyncio.sleep(60))
    await tasks.wait(timeout=0.05)
    assert not task.done() and len(tasks) == 1
    await tasks.cancel()
    assert task.cancelled() and len(tasks) == 0


async def test_a_failing_task_does_not_break_wait_or_cancel():
    async def fails() -> None:
        raise RuntimeError("boom")

    tasks = TaskSet()
    failing = tasks.start(fails())
    await tasks.wait()
    await tasks.cancel()
    assert isinstance(failing.exception(), RuntimeError)
