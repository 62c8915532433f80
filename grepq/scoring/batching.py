"""Feeding images to the models in input order: decoding ahead in threads, batches of same-size images."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, List, Sequence, Tuple, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def prefetch_map(fn: Callable[[T], R], items: Sequence[T], workers: int = 0) -> Iterator[Tuple[T, object]]:
    """``(item, fn(item))`` for every item, in order; an exception raised by ``fn`` is yielded as the result.

    ``workers > 0``: ``fn`` runs in that many threads (PIL decoding releases the GIL), at most ``workers + 1`` items
    ahead; decodes not yet started are cancelled if the consumer stops early. ``workers=0``: in the caller's thread.
    """
    if workers <= 0:
        for it in items:
            try:
                yield it, fn(it)
            except Exception as exc:  # noqa: BLE001 -- handed to the caller, who decides
                yield it, exc
        return
    ahead = workers + 1
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grepq-decode")
    try:
        queue: deque = deque()
        source = iter(items)
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            while not exhausted and len(queue) < ahead:
                try:
                    it = next(source)
                except StopIteration:
                    exhausted = True
                    return
                queue.append((it, pool.submit(fn, it)))

        refill()
        while queue:
            it, fut = queue.popleft()
            refill()
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001
                result = exc
            yield it, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def batch_limit(height: int, width: int, batch_size: int, max_batch_pixels: int) -> int:
    """How many (H, W) images go in one batch: ``batch_size``, fewer if their pixels would pass ``max_batch_pixels``."""
    return max(1, min(int(batch_size), int(max_batch_pixels) // max(1, height * width)))


def same_size_batches(stream: Iterable[Tuple[T, object]], batch_size: int,
                      max_batch_pixels: int) -> Iterator[List[Tuple[T, object]]]:
    """Consecutive ``(key, image (3, H, W))`` pairs of one shape in batches of at most :func:`batch_limit`; a value
    that is not a tensor (a decoding error) comes alone. Concatenating the batches gives the stream back."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    bucket: List[Tuple[T, object]] = []
    shape = None
    limit = 1
    for key, value in stream:
        is_img = isinstance(value, torch.Tensor)
        if bucket and (not is_img or tuple(value.shape) != shape or len(bucket) >= limit):
            yield bucket
            bucket = []
        if not is_img:
            yield [(key, value)]
            continue
        if not bucket:
            shape = tuple(value.shape)
            limit = batch_limit(shape[-2], shape[-1], batch_size, max_batch_pixels)
        bucket.append((key, value))
    if bucket:
        yield bucket
