"""runtime store micro-benchmark on real RocksDB (no broker, no Faust).

    .venv/bin/python bench/store_bench.py [--contacts 100000] [--value-bytes 1000] [--batch 500]

Loads ``--contacts`` contact states of ``--value-bytes`` (random bytes: state
is compact binary, lz4 gains little) through transactions of ``--batch``
puts, then measures point gets, and transactions shaped like an evaluator
batch: per input get the contact, put it back, put one archive entry; then
prepare and flush (one WriteBatch with the checkpoint). A prefix scan of a
contact's archive (20 entries) with unflushed writes in the overlay is timed
too. Wall clock on a shared 2-core machine: figures are indicative.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.keys import Keyspace, archive_key, archive_prefix, contact_key
from runtime.store import PartitionStore, Store

__all__ = ["main"]


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s"


def _load(part: PartitionStore, ids: list[str], value: bytes, batch: int) -> float:
    offset = 0
    start = time.perf_counter()
    for i in range(0, len(ids), batch):
        tx = part.begin()
        for contact in ids[i : i + batch]:
            tx.put(Keyspace.CONTACTS, contact_key(contact), value)
        offset += len(tx.prepare())
        tx.flush(offset - 1)
    return time.perf_counter() - start


def _gets(part: PartitionStore, ids: list[str], n: int) -> float:
    sample = random.Random(1).choices(ids, k=n)
    tx = part.begin()
    start = time.perf_counter()
    for contact in sample:
        tx.get(Keyspace.CONTACTS, contact_key(contact))
    elapsed = time.perf_counter() - start
    tx.close()
    return elapsed


def _batches(
    part: PartitionStore, ids: list[str], batch: int, rounds: int
) -> tuple[float, float, float]:
    """(total, prepare+flush, time of the flushes alone) for ``rounds`` batches."""
    rng = random.Random(2)
    offset = (part.checkpoint() or 0) + 1
    total = commit = flush = 0.0
    for r in range(rounds):
        start = time.perf_counter()
        tx = part.begin()
        for seq, contact in enumerate(rng.choices(ids, k=batch)):
            key = contact_key(contact)
            state = tx.get(Keyspace.CONTACTS, key) or b""
            tx.put(Keyspace.CONTACTS, key, state)
            event_key = archive_key(contact, 1_700_000_000_000 + r, str(seq))
            tx.put(Keyspace.ARCHIVE, event_key, b"e" * 64)
        mid = time.perf_counter()
        records = tx.prepare()
        before_flush = time.perf_counter()
        offset += len(records)
        tx.flush(offset - 1)
        end = time.perf_counter()
        total += end - start
        commit += end - mid
        flush += end - before_flush
    return total, commit, flush


def _scans(part: PartitionStore, ids: list[str], n: int) -> float:
    tx = part.begin()
    for contact in ids[:n]:
        for t in range(10):
            tx.put(Keyspace.ARCHIVE, archive_key(contact, t), b"e" * 64)
    tx.flush(None)
    tx = part.begin()
    for contact in ids[:n]:  # 10 stored + 10 unflushed entries each
        for t in range(10, 20):
            tx.put(Keyspace.ARCHIVE, archive_key(contact, t), b"e" * 64)
    start = time.perf_counter()
    for contact in ids[:n]:
        found = sum(1 for _ in tx.scan_prefix(Keyspace.ARCHIVE, archive_prefix(contact)))
        assert found >= 20
    elapsed = time.perf_counter() - start
    tx.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    ids = [f"contact-{i:08d}" for i in range(args.contacts)]
    random.Random(0).shuffle(ids)
    value = os.urandom(args.value_bytes)
    with tempfile.TemporaryDirectory(prefix="store_bench") as directory:
        store = Store(directory)
        part = store.assign(0)
        load = _load(part, ids, value, args.batch)
        print(
            f"load  {args.contacts:,} puts ({args.value_bytes} B, tx of {args.batch}):"
            f" {_rate(args.contacts, load)}"
        )
        n_gets = min(args.contacts, 100_000)
        print(f"get   {n_gets:,} random point gets:{_rate(n_gets, _gets(part, ids, n_gets))}")
        total, commit, flush = _batches(part, ids, args.batch, args.rounds)
        inputs = args.batch * args.rounds
        print(
            f"batch {args.rounds} tx of {args.batch} inputs (get+put+archive put):"
            f" {_rate(inputs, total)} inputs, {args.rounds / total:,.0f} tx/s,"
            f" prepare+flush {commit / args.rounds * 1000:.2f} ms/tx,"
            f" flush alone {flush / args.rounds * 1000:.2f} ms/tx"
        )
        n_scans = min(args.contacts, 5_000)
        scans = _scans(part, ids, n_scans)
        print(
            f"scan  {n_scans:,} archive prefix scans (20 entries, 10 unflushed):"
            f"{_rate(n_scans, scans)}"
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"max RSS {rss:.0f} MB; block cache usage {store.cache.get_usage() / 2**20:.1f} MiB")
        store.close()


if __name__ == "__main__":
    main()
