"""The evaluator's processor alone, no broker: inputs per CPU-second.

    .venv/bin/python bench/driver_bench.py [--segments 100] [--contacts 10000]
        [--events 40000] [--state-cache-bytes 262144]

Drives runtime/driver.py (the broker-free driver of the tests) on real
RocksDB, 4 partitions, batches of 500: the wide mix of ``--segments``
segments, the setup of ``--contacts`` contacts, then a backlog of
``--events`` interactions (tools/workload.py), timed in process CPU. Used to
compare versions of the processor and engine where the end-to-end figure
wanders more than the change (run the two versions alternately).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import make_workload

from agents.codec import input_payload
from models.inputs import AccountUpsert, ContactUpsert, Interaction, StaticEdit
from runtime.driver import Driver
from runtime.processor import ProcessorConfig
from tools.wide_mix import wide_segment_mix

_KINDS = {ContactUpsert: "contact", Interaction: "interaction", StaticEdit: "static_edit",
          AccountUpsert: "account"}


def run(segments: int, contacts: int, events: int, state_cache_bytes: int) -> dict:
    setup, backlog = make_workload(contacts, events)
    config = ProcessorConfig(partitions=4, state_cache_bytes=state_cache_bytes)
    driver = Driver(4, store="rocksdb", batch_size=500, depth=2, config=config)
    try:
        for m in wide_segment_mix(segments):
            driver.send("segment", m.definition.model_dump(mode="json", exclude_none=True))
        for m in setup:
            driver.send(_KINDS[type(m)], input_payload(m))
        driver.run_until_idle()
        for m in backlog:
            driver.send(_KINDS[type(m)], input_payload(m))
        started = time.process_time()
        driver.run()
        cpu = time.process_time() - started
        return {"segments": segments, "contacts": contacts, "inputs": len(backlog),
                "cpu_seconds": round(cpu, 3), "inputs_per_cpu_s": round(len(backlog) / cpu),
                "changes": len(driver.outputs)}
    finally:
        driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--state-cache-bytes", type=int, default=1 << 18,
                        help="per partition (the worker shares SEGMENTFLOW_STATE_CACHE_BYTES)")
    args = parser.parse_args()
    print(run(args.segments, args.contacts, args.events, args.state_cache_bytes))


if __name__ == "__main__":
    main()
