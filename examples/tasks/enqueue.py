"""Queue thumbnail jobs and wait for their results: ``python -m examples.tasks.enqueue cat dog``."""

from __future__ import annotations

import asyncio
import sys

from examples.tasks.app import thumbnails


# --8<-- [start:enqueue]
async def main(names: list[str]) -> None:
    """Enqueue one job per name, then print each result as it is ready."""
    handles = [await thumbnails.enqueue("thumbnail.make", name) for name in names]
    for handle in handles:
        print(await handle.result(timeout=30))


# --8<-- [end:enqueue]


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["cat"]))
