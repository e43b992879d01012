"""Reads across workers: which worker holds which partition, and plain HTTP
calls to the others' APIs (scatter-gather and forwarding).

The batch evaluator has its own consumer group, whose members carry their
API's URL (``http://<web_host>:<web_port>``) as client id: ``GroupPeers``
reads the group's assignment from the broker (refreshed every second), and
a partition is held by the worker evaluating it. Calls to peers
carry ``local=1`` so a peer answers from its own partitions only (no second
hop), and the caller's Authorization header.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from yarl import URL

from app.api.errors import ApiError

__all__ = ["Cluster", "GroupPeers"]

log = logging.getLogger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=30)


def _ident(url: Any) -> tuple[str, int | None]:
    u = URL(str(url))
    return (u.host or "", u.port)


class GroupPeers:
    """partition -> URL of the members of a consumer group whose client id
    is their API's URL, from the group's assignment on the broker."""

    REFRESH = 1.0  # seconds between descriptions of the group

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._bootstrap, self._group, self._topic = bootstrap, group, topic
        self.owners: dict[int, str] = {}

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            while True:
                try:
                    self.owners = await self._describe(admin)
                except Exception:  # broker or group not reachable right now: keep the last map
                    log.debug("describing group %s failed", self._group, exc_info=True)
                await asyncio.sleep(self.REFRESH)  # a refresh period, not a wait for a condition
        finally:
            await admin.close()

    async def _describe(self, admin: AIOKafkaAdminClient) -> dict[int, str]:
        owners: dict[int, str] = {}
        for response in await admin.describe_consumer_groups([self._group]):
            for group in response.groups:
                members = group[5]
                for member in members:
                    client_id, raw = member[1], member[4]
                    if not raw or not client_id.startswith("http"):
                        continue
                    assignment = ConsumerProtocolMemberAssignment.decode(raw)
                    for tp in assignment.partitions():
                        if tp.topic == self._topic:
                            owners[tp.partition] = client_id.rstrip("/")
        return owners


class Cluster:
    def __init__(self, app: faust.App, group_peers: GroupPeers) -> None:
        self._app, self._group_peers = app, group_peers

    def peers(self) -> dict[int, str]:
        """partition -> base URL of the other worker holding it."""
        me = _ident(self._app.conf.canonical_url)
        return {p: url for p, url in self._group_peers.owners.items() if _ident(url) != me}

    async def call(self, request: Any, base: str, method: str, path: str,
                   params: dict[str, Any] | None = None, body: bytes | None = None
                   ) -> tuple[int, Any, str]:
        """(status, JSON body or text, content type) of a peer's answer."""
        headers = {}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        if body is not None:
            headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
        query = {"local": "1", **{k: str(v) for k, v in (params or {}).items()
                                  if v is not None}}
        try:
            async with aiohttp.ClientSession(timeout=_TIMEOUT) as session, session.request(
                    method, base + path, params=query, data=body, headers=headers) as resp:
                ctype = resp.content_type
                payload = await resp.json() if ctype == "application/json" else await resp.text()
                return resp.status, payload, ctype
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(503, "peer_unreachable",
                           f"the worker at {base} (holding part of the data) did not answer: "
                           f"{exc}") from exc

    async def gather(self, request: Any, method: str, path: str,
                     params: dict[str, Any] | None = None, body: bytes | None = None
                     ) -> list[Any]:
        """The JSON answers of every other worker (one call each)."""
        answers = []
        for base in sorted(set(self.peers().values())):
            status, payload, _ = await self.call(request, base, method, path, params, body)
            if status >= 400:
                if status == 404:
                    continue  # e.g. the segment is not yet applied there
                message = payload["error"]["message"] if isinstance(payload, dict) else payload
                raise ApiError(status, "peer_error", f"the worker at {base}: {message}")
            answers.append(payload)
        return answers
