"""Wait until a Kafka broker answers a real client: bootstrap + metadata round trip.

Usage: python wait_ready.py BOOTSTRAP [TIMEOUT_SECONDS]
Exits 0 when ready, 1 on timeout. An open port is not enough: a KRaft broker
accepts connections before its metadata is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError


async def metadata_round_trip(bootstrap: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return len(metadata.brokers())
    finally:
        await client.close()


async def wait(bootstrap: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await metadata_round_trip(bootstrap) > 0:
                return True
        except (TimeoutError, KafkaError, OSError):
            pass
        await asyncio.sleep(0.3)
    return False


def main() -> int:
    # Connection refusals while the broker boots are expected, not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    bootstrap = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 90.0
    if asyncio.run(wait(bootstrap, timeout)):
        return 0
    print(f"wait_ready: no metadata from {bootstrap} within {timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
