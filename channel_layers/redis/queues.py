"""The work queues of RedisChannelLayer: shared by every process, durable, at least once.

Each operation is one Lua script (``queue_scripts``), so a take, a renewal or an ack is
atomic however many workers race. A worker that dies holding a job stops renewing its lease;
the next script call after the lease deadline puts the job back (or dead-letters it after its
last attempt), so it runs again elsewhere: never lost, and never run twice while its first run
is alive and renewing. Payloads and results go through the layer's serializer (and its
encryption). A queue lives on one shard, chosen by its name.

Waiting costs no polling: a taker with nothing to take blocks on the queue's wake list (each
enqueue pushes a token) for at most the time until the next scheduled job or lease deadline;
a result waiter blocks on the job's notify list.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from channel_layers.queues import (
    Enqueued,
    JobInfo,
    JobState,
    Leased,
    NewJob,
    QueueCounts,
    QueueStore,
    new_job_id,
    require_portable,
)
from channel_layers.redis import queue_scripts as scripts
from channel_layers.redis.connection import Shard, evalsha
from channel_layers.redis.durable import RedisChannelLayer

__all__ = ["RedisQueueStore"]

#: Longest single block on a wake or notify list (kept under the socket timeout).
_BLOCK = 2.0


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisQueueStore(QueueStore):
    """Work queues in Redis under the layer's prefix (see :mod:`channel_layers.queues`)."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.serializer = layer.serializer

    def _base(self, queue: str) -> str:
        self.layer.require_valid_group_name(queue)
        return f"{self.layer.prefix}:tq:{{{queue}}}"

    def _shard(self, name: str) -> Shard:
        return self.layer.shards[self.layer.ring.index(name)]

    async def _script(self, queue: str, script: str, *args: Any) -> Any:
        base = self._base(queue)
        return await self._shard(queue).run(lambda client: evalsha(client, script, [base], [*args]))

    async def _block(self, queue: str, key: str, timeout: float) -> Any:
        return await self._shard(queue).run(
            lambda client: client.blpop([key], timeout=round(timeout, 3))
        )

    # --- the contract -----------------------------------------------------------------------

    async def enqueue(self, queue: str, job: NewJob) -> Enqueued:
        """One EVALSHA: store the job (serialized now) or find its idempotent twin."""
        require_portable(job.payload, "payload")
        payload = self.serializer.serialize({"p": job.payload})
        job_id = job.job_id or new_job_id()
        # Rounded up: the server's clock is read in whole milliseconds, and "not before run_at"
        # must hold to the microsecond.
        run_at = 0 if job.run_at is None else math.ceil(job.run_at * 1000)
        reply = await self._script(
            queue,
            scripts.ENQUEUE,
            job_id,
            job.name,
            payload,
            job.priority,
            run_at,
            job.max_attempts,
            job.idempotency_key or "",
            _ms(job.idempotency_ttl),
            job.max_lost_leases,
        )
        return Enqueued(reply[0].decode(), created=bool(reply[1]))

    async def take_many(
        self, queue: str, lease: float, timeout: float, limit: int, worker: str = ""
    ) -> list[Leased]:
        """One EVALSHA when jobs are ready; else block on the wake list and try again."""
        deadline = time.monotonic() + timeout
        wake = self._base(queue) + ":wake"
        while True:
            token = new_job_id()
            reply = await self._script(queue, scripts.TAKE, _ms(lease), token, limit, worker)
            if reply[0]:
                return [
                    self._leased(reply[start : start + 7], f"{token}.{start // 7 + 1}")
                    for start in range(0, len(reply), 7)
                ]
            wait = deadline - time.monotonic()
            if wait <= 0:
                return []
            if int(reply[1]) >= 0:
                wait = min(wait, int(reply[1]) / 1000 + 0.001)
            woke = await self._block(queue, wake, max(0.01, min(wait, _BLOCK)))
            # A blocking pop may overrun (redis-py opens a connection for each): past the
            # deadline, take again only if an enqueue woke us.
            if not woke and time.monotonic() >= deadline:
                return []

    def _leased(self, fields: list[Any], token: str) -> Leased:
        job_id, name, payload, attempt, max_attempts, priority, enqueued = fields
        return Leased(
            job_id.decode(),
            name.decode(),
            self.serializer.deserialize(payload)["p"],
            int(attempt),
            int(max_attempts),
            token,
            int(priority),
            int(enqueued) / 1000,
        )

    async def renew(
        self, queue: str, job_id: str, token: str, lease: float, progress: float | None = None
    ) -> bool:
        """One EVALSHA."""
        extra = "" if progress is None else repr(float(progress))
        return bool(await self._script(queue, scripts.RENEW, job_id, token, _ms(lease), extra))

    async def ack(
        self, queue: str, job_id: str, token: str, result: Any, result_ttl: float
    ) -> bool:
        """One EVALSHA; the result is serialized here (InvalidMessage if it cannot be)."""
        data = self.serializer.serialize({"r": result})
        reply = await self._script(queue, scripts.ACK, job_id, token, data, _ms(result_ttl))
        return bool(reply)

    async def nack(
        self, queue: str, job_id: str, token: str, error: str, delay: float | None
    ) -> bool:
        """One EVALSHA."""
        delay_ms = -1 if delay is None else (0 if delay <= 0 else _ms(delay))
        return bool(await self._script(queue, scripts.NACK, job_id, token, error, delay_ms))

    async def release(self, queue: str, job_id: str, token: str) -> bool:
        """One EVALSHA."""
        return bool(await self._script(queue, scripts.RELEASE, job_id, token))

    async def cancel(self, queue: str, job_id: str, result_ttl: float) -> bool:
        """One EVALSHA."""
        return bool(await self._script(queue, scripts.CANCEL, job_id, _ms(result_ttl)))

    async def job(self, queue: str, job_id: str) -> JobInfo | None:
        """One EVALSHA."""
        found = await self._jobs(queue, "", 0, [job_id])
        return found[0] if found else None

    async def wait(self, queue: str, job_id: str, timeout: float) -> JobInfo | None:
        """Read the job; while it runs, block on its notify list (bounded) and read again."""
        deadline = time.monotonic() + timeout
        notify = self._base(queue) + f":n:{job_id}"
        while True:
            info = await self.job(queue, job_id)
            if info is None or info.finished:
                return info
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            if await self._block(queue, notify, max(0.01, min(wait, _BLOCK))):
                # Put the token back for any other waiter on the same job.
                await self._shard(queue).run(
                    lambda client: evalsha(client, scripts.NOTIFY_AGAIN, [notify], [])
                )

    async def running(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """One EVALSHA."""
        return await self._jobs(queue, ":lease", limit, [])

    async def dead_letters(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """One EVALSHA."""
        return await self._jobs(queue, ":dead", limit, [])

    async def retry_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """One EVALSHA."""
        return int(await self._script(queue, scripts.DEAD, "retry", *(job_ids or [])))

    async def purge_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """One EVALSHA."""
        return int(await self._script(queue, scripts.DEAD, "purge", *(job_ids or [])))

    async def counts(self, queue: str) -> dict[str, QueueCounts]:
        """One EVALSHA."""
        flat = await self._script(queue, scripts.COUNTS)
        counts: dict[str, QueueCounts] = {}
        for field, value in zip(flat[::2], flat[1::2], strict=True):
            name, _, state = field.decode().rpartition("\n")
            counts.setdefault(name, QueueCounts()).add(state, int(value))
        return counts

    async def queues(self) -> list[str]:
        """SCAN every shard for queues' count hashes."""
        pattern = f"{self.layer.prefix}:tq:{{*}}:counts"
        names: set[str] = set()
        for shard in self.layer.shards:

            async def scan(client: Any) -> None:
                async for key in client.scan_iter(match=pattern, count=1000):
                    text = key.decode() if isinstance(key, bytes) else key
                    names.add(text[text.index("{") + 1 : text.rindex("}")])

            await shard.run(scan)
        return sorted(names)

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """One EVALSHA (GET, then SET PX when free or ours)."""
        return await self._claim(scripts.CLAIM, key, owner, _ms(ttl))

    async def release_claim(self, key: str, owner: str) -> bool:
        """One EVALSHA."""
        return await self._claim(scripts.RELEASE_CLAIM, key, owner)

    async def _claim(self, script: str, key: str, *args: Any) -> bool:
        redis_key = f"{self.layer.prefix}:claim:{{{key}}}"
        reply = await self._shard(key).run(
            lambda client: evalsha(client, script, [redis_key], [*args])
        )
        return bool(reply)

    async def purge(self, queue: str) -> None:
        """One EVALSHA."""
        await self._script(queue, scripts.PURGE)

    # --- decoding ---------------------------------------------------------------------------

    async def _jobs(self, queue: str, index: str, limit: int, ids: Sequence[str]) -> list[JobInfo]:
        flat = await self._script(queue, scripts.JOBS, index, limit, *ids)
        return [
            self._info(queue, job_id.decode(), fields)
            for job_id, fields in zip(flat[::2], flat[1::2], strict=True)
        ]

    def _info(self, queue: str, job_id: str, flat: list[bytes]) -> JobInfo:
        fields = {key.decode(): value for key, value in zip(flat[::2], flat[1::2], strict=True)}
        state: JobState = fields["state"].decode()  # type: ignore[assignment]
        result = self.serializer.deserialize(fields["res"])["r"] if "res" in fields else None
        progress = fields.get("prog")
        error = fields.get("err")
        finished = fields.get("fin")
        started, attempted = fields.get("sta"), fields.get("try")
        return JobInfo(
            job_id=job_id,
            queue=queue,
            name=fields["name"].decode(),
            state=state,
            attempts=int(fields["att"]),
            priority=int(fields["prio"]),
            enqueued_at=int(fields["enq"]) / 1000,
            run_at=int(fields["run"]) / 1000,
            result=result,
            error=error.decode() if error else None,
            progress=float(progress) if progress else None,
            finished_at=int(finished) / 1000 if finished else None,
            payload=self.serializer.deserialize(fields["payload"])["p"],
            started_at=int(started) / 1000 if started else None,
            last_attempted_at=int(attempted) / 1000 if attempted else None,
            worker_ids=tuple(fields["wk"].decode().split("\n")) if "wk" in fields else (),
        )
