"""Table recovery that seeks the stream partitions *before* resuming them,
and seeks never-committed ones to their earliest offset.

Faust (faust-streaming 0.15.3) can consume records of a newly assigned
partition and throw them away during a rebalance, and relies on the final
seek to committed offsets to re-read them:

* ``Consumer.getmany`` (faust/transport/consumer.py:767-774) discards a
  fetched batch while the flow is stopped and calls ``perform_seek``;
* ``Recovery.on_recovery_completed`` (faust/tables/recovery.py:649-659)
  resumes the stream partitions, awaits ``perform_seek`` (one round trip per
  assigned partition) and only then calls ``app.flow_control.resume()``,
  which *clears* every agent channel queue (channels are created with
  ``clear_on_resume=True``, faust/channels.py:143-145; mode
  FlowControlEvent.resume, mode/utils/queues.py:97-101). When no table needs
  restoring, ``_restart_recovery`` has already resumed the flow
  (recovery.py:477-479), so during that seek the fetcher delivers records of
  the resumed partitions to the queues (the consumer's read offsets move past
  them), and the clear drops them.

aiokafka's ``seek_to_committed`` does not seek a partition that has no
committed offset (aiokafka/consumer/consumer.py:901, ``if offset and offset
> 0``). A partition taken over from a worker killed before its first commit
therefore stays positioned after the discarded records, at the end of the
log: the survivor silently never processes it (the two-worker kill test's
stall). With a committed offset the seek rewinds aiokafka, but the fetcher's
loop, still walking the old batch, sets the read offset past the records
again, and ``Consumer._drain_messages`` drops the re-fetched ones
(consumer.py:1209-1228, a dev-level "DROPPED MESSAGE" log): a silent gap of
inputs (contacts whose upsert fell in it lost their profile).

Here the seek happens while the stream partitions are still paused, a
partition without a committed offset is sought to its earliest offset
(``auto_offset_reset="earliest"``, where it would start anyway), and the
partitions are resumed only afterwards: nothing of theirs is fetched before
their positions and read offsets are final.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables import TableManager
from faust.tables.recovery import Recovery

__all__ = ["SeekFirstRecovery", "SeekFirstTableManager"]


class SeekFirstRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's method with the seek moved before ``resume_partitions``."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table],
                    self.standbys_for_table[table],
                )
            )
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                self.app.consumer_generation_id, generation_id)
            return
        if consumer.assignment():
            # Stream partitions are still paused (since on_partitions_assigned):
            # nothing of theirs is fetched or delivered while we seek.
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(
                self._seek_stream_partitions(consumer),
                timeout=self.app.conf.broker_request_timeout,
            )
            if self.app.consumer_generation_id != generation_id:
                self.log.warning("Recovery rebalancing again (during seek)")
                return
        # No await from here to the flow-control resume below: nothing of the
        # resumed partitions can be fetched before their positions are final.
        assignment = consumer.assignment()
        consumer.resume_partitions(
            {tp for tp in assignment if not self._is_changelog_tp(tp)}
        )
        self.completed.set()
        # As in Faust: this also clears the channel queues, dropping records
        # of the previous generation still queued (nothing of the partitions
        # just resumed can be in them yet).
        self.app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_stream_partitions(self, consumer: Any) -> None:
        """Faust's ``perform_seek``, plus: a stream partition nobody ever
        committed on is sought to its earliest offset.

        aiokafka's ``seek_to_committed`` (aiokafka/consumer/consumer.py,
        ``if offset and offset > 0: seek_to(...)``) leaves such a partition
        where it is. Records Faust fetched for it during the rebalance and
        then discarded (``Consumer.getmany`` while the flow is stopped, the
        queues cleared by ``flow_control.resume()``) moved that position past
        them, and nothing would ever rewind it: no commit, no replay. With
        ``auto_offset_reset="earliest"`` (Faust's default, ours) the beginning
        is where an uncommitted partition starts anyway.
        """
        await consumer.perform_seek()
        committed = consumer._committed_offset  # filled in by perform_seek
        uncommitted = [
            tp for tp in consumer.assignment()
            if not self._is_changelog_tp(tp) and not committed.get(tp)
        ]
        if uncommitted:
            earliest = await consumer.earliest_offsets(*uncommitted)
            for tp in uncommitted:
                await consumer.seek(tp, earliest.get(tp) or 0)


class SeekFirstTableManager(TableManager):
    """Faust's table manager with :class:`SeekFirstRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop
            )
        return self._recovery
