"""Dynamic micro-batching: concurrent requests for the same model and operation run as one batch.

    batcher = MicroBatcher(run_batch, max_batch=64, max_wait=0.002, executor=executor)
    outputs = await batcher.submit(inputs)     # inputs: a tuple of tensors (N, ...) or None; outputs: (N, ...)

Each request puts its items on the batcher's queue and waits. One task per batcher takes the first request
waiting, every request queued behind it (up to ``max_batch`` items), concatenates their inputs, runs
``run_batch`` once in the executor's thread (so the event loop keeps accepting requests meanwhile) and hands
each request its own rows of the result. Requests that arrive while a batch runs queue up and form the next
batch, so batches grow with the load without any wait. The short wait (``max_wait``) for more requests is
spent only when the previous batch held several requests: a lone client never waits for company that does
not come, a busy server gathers fuller batches.

A batch whose run fails (one request's codes that the model refuses, say) is run again request by request, so
that only the request at fault gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch
from torch import Tensor

Inputs = tuple[Tensor | None, ...]  # the tensors of one request, each (N, ...), or None where absent (labels)


@dataclass
class BatchStats:
    """What a batcher has run: the evidence that requests were batched."""

    requests: int = 0
    items: int = 0
    batches: int = 0
    largest_batch: int = 0  # requests in the fullest batch
    sizes: dict[int, int] = field(default_factory=dict)  # requests per batch -> how many batches held that many

    def record(self, requests: int, items: int) -> None:
        self.requests += requests
        self.items += items
        self.batches += 1
        self.largest_batch = max(self.largest_batch, requests)
        self.sizes[requests] = self.sizes.get(requests, 0) + 1

    def to_dict(self) -> dict:
        return {
            "requests": self.requests, "items": self.items, "batches": self.batches,
            "largest_batch": self.largest_batch,
            "mean_batch": round(self.requests / self.batches, 3) if self.batches else 0.0,
            "batch_sizes": {str(size): count for size, count in sorted(self.sizes.items())},
        }


@dataclass
class _Request:
    inputs: Inputs
    items: int
    future: asyncio.Future


def _concatenate(requests: list[_Request]) -> Inputs:
    """The requests' inputs joined along the batch dimension, position by position (None stays None)."""
    columns = zip(*(request.inputs for request in requests))
    return tuple(None if column[0] is None else torch.cat(column) for column in columns)


class MicroBatcher:
    """Gathers concurrent requests into batches of up to ``max_batch`` items for ``run_batch``."""

    def __init__(self, run_batch: Callable[[Inputs], Tensor], max_batch: int, max_wait: float, executor: Executor):
        self.run_batch, self.max_batch, self.max_wait, self.executor = run_batch, max_batch, max_wait, executor
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task | None = None
        self._held: _Request | None = None  # a request taken off the queue that did not fit the last batch
        self._busy = False  # whether the previous batch held several requests: then a short wait gathers more

    async def submit(self, inputs: Inputs) -> Tensor:
        """The result rows of ``inputs`` (whose first tensor gives the number of items)."""
        if self._task is None:  # made on first use, in the event loop that serves the requests
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(inputs, len(inputs[0]), future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            await self._run(batch)

    async def _gather(self) -> list[_Request]:
        """The next batch: the first request waiting, then those queued behind it that fit in ``max_batch``."""
        first, self._held = self._held or await self._queue.get(), None
        batch, items = [first], first.items
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.max_wait if self._busy else 0.0)
        while items < self.max_batch:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if items + request.items > self.max_batch:
                self._held = request  # it starts the next batch
                break
            batch.append(request)
            items += request.items
        self._busy = len(batch) > 1
        return batch

    async def _run(self, batch: list[_Request]) -> None:
        batch = [request for request in batch if not request.future.done()]  # a client that went away
        if not batch:
            return
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self.executor, self._inference, _concatenate(batch))
        except Exception as error:  # noqa: BLE001 - handed to the requests, never lost in this task
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
                return
            for request in batch:  # again one by one: only the request at fault gets the error
                await self._run([request])
            return
        self.stats.record(len(batch), sum(request.items for request in batch))
        start = 0
        for request in batch:
            _settle(request.future, outputs[start : start + request.items])
            start += request.items

    def _inference(self, inputs: Inputs) -> Tensor:
        with torch.inference_mode():  # thread-local: entered in the worker thread itself
            return self.run_batch(inputs)


def _settle(future: asyncio.Future, result: Tensor | None = None, error: Exception | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
