"""Iterate in a background thread, a bounded number of items ahead of the consumer.

``refine`` reads and checks the next input files here while the model works on the current
batch (the network releases the GIL): ``for item in prefetch(load_all(paths), depth=4): ...``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Empty, Full, Queue
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.1  # how often a blocked thread checks whether the other side has stopped


class _End:
    """The producer's last message: the items ran out (``error`` None) or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield the items of ``items``, produced by a background thread at most ``depth`` items ahead.

    An exception raised while producing is re-raised here, at its place in the sequence. When
    the consumer stops early (``break``, an exception, ``close()``), the thread stops after the
    item it is producing.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    queue: Queue[T | _End] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=_POLL_S)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_End(error))
            return
        put(_End())

    thread = threading.Thread(target=produce, name="d3prefine-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = queue.get(timeout=_POLL_S)
            except Empty:
                if not thread.is_alive() and queue.empty():  # the producer died without a message
                    raise RuntimeError("prefetch thread ended unexpectedly") from None
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()
