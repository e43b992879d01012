"""Contact resources (the segments of a contact, explain) and draft preview."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.web import Response
from faust.web import Request, View

from agents.state_reads import ContactView
from app.api.context import ApiContext, coverage, is_local
from app.api.drafts import read_draft
from app.api.errors import ApiError, json_response
from app.api.guard import authorize, check_id, int_param
from app.api.limits import clip
from engine import CompileError, CycleError

__all__ = ["register_contacts", "trace_json"]


def trace_json(trace: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"text": trace.text, "result": trace.result}
    if trace.seen is not None:
        out["seen"] = repr(trace.seen)
    if trace.threshold is not None:
        out["threshold"] = repr(trace.threshold)
    if trace.children:
        out["children"] = [trace_json(c) for c in trace.children]
    return out


def register_contacts(ctx: ApiContext) -> None:
    app, settings, reads, writer, cluster = (ctx.app, ctx.settings, ctx.reads, ctx.writer,
                                             ctx.cluster)

    async def forwarded(request: Request, contact_id: str) -> Response | None:
        """The owner's answer when another worker holds the contact's
        partition; None when this worker holds it."""
        view = reads.contact(contact_id)
        if view.held:
            return None
        owner = None if is_local(request) else cluster.peers().get(view.partition)
        if owner is None:
            raise ApiError(503, "partition_not_held",
                           f"contact {clip(contact_id)!r} is in partition {view.partition}, "
                           "which no worker holds right now (rebalancing?); retry")
        status, payload, ctype = await cluster.call(
            request, owner, "GET", request.path,
            {k: v for k, v in request.query.items() if k != "local"})
        if ctype == "application/json":
            return json_response(payload, status)
        return Response(text=payload, status=status, content_type=ctype)

    def held_contact(contact_id: str) -> ContactView:
        view = reads.contact(contact_id)
        if view.state is None:
            raise ApiError(404, "contact_not_found", f"no contact {clip(contact_id)!r}")
        return view

    @app.page("/contacts/{contact_id}/segments", name="contact-segments")
    class ContactSegments(View):
        async def get(self, request: Request, contact_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(contact_id, "contact id")
            if (answer := await forwarded(request, contact_id)) is not None:
                return answer
            view = held_contact(contact_id)
            assert view.state is not None
            return json_response({"contact_id": contact_id, "partition": view.partition,
                                  "segments": sorted(view.state.memberships())})

    @app.page("/contacts/{contact_id}/explain/{segment_id}", name="contact-explain")
    class Explain(View):
        async def get(self, request: Request, contact_id: str, segment_id: str) -> Response:
            authorize(request, settings, write=False)
            check_id(contact_id, "contact id")
            check_id(segment_id)
            if writer.current(segment_id) is None:
                raise ApiError(404, "segment_not_found", f'no segment "{clip(segment_id)}"')
            if (answer := await forwarded(request, contact_id)) is not None:
                return answer
            view = held_contact(contact_id)
            assert view.state is not None
            trace = reads.explain(view, segment_id)
            clock = reads.clock_of(view.partition)  # what "now" the trace used
            if request.query.get("format") == "text":
                event = clock["event_clock"] or "none yet: the wall clock"
                head = (f"clock: {clock['clock']}, partition {view.partition}, now "
                        f"{clock['now']}" + (f" (event clock: {event})"
                                             if clock["clock"] == "event" else ""))
                return self.text(f"{trace}\n{head}\n", content_type="text/plain")
            return json_response({
                "contact_id": contact_id, "segment_id": segment_id,
                "member": view.state.is_member(segment_id), "evaluates_to": trace.result,
                "text": str(trace), "trace": trace_json(trace),
                "partition": view.partition, **clock})

    @app.page("/preview", name="preview")
    class Preview(View):
        """A draft's exact size over the current contacts and a sample of its
        members, computed by the engine on copies: nothing goes live."""

        async def post(self, request: Request) -> Response:
            authorize(request, settings, write=False)
            sample = int_param(request, "sample", 10, 0, 1000)
            async with ctx.work.slot() as slot:
                draft, result = await self.preview(request, slot, sample)
            answer = preview_answer(result)
            others: set[int] = set()
            if not is_local(request):  # outside the slot: peers have their own
                for peer in await cluster.gather(request, "POST", "/preview",
                                                 {"sample": sample}, await request.read()):
                    merge_preview(answer, peer, sample)
                    others |= set(peer["partitions_answered"])
            return json_response({"formula": draft.formula, **answer,
                                  "warnings": reads.field_warnings(draft),
                                  **coverage(ctx, others)})

        async def preview(self, request: Request, slot: Any, sample: int
                          ) -> tuple[Any, Any]:
            """This worker's share: the draft validated in a worker process,
            then the scan of the held partitions within the time budget."""
            draft = await read_draft(ctx, request, slot, "preview")
            ctx.writer.check_event_types(draft)  # 422 at an undeclared type (event-types.md)
            deadline = time.monotonic() + settings.api_preview_timeout
            try:
                return draft, await reads.preview(draft, sample, deadline)
            except CycleError as exc:
                raise ApiError(409, "reference_cycle", f"draft refused: {exc}") from exc
            except (CompileError, ValueError) as exc:
                raise ApiError(422, "invalid", f"draft refused: {exc}") from exc
            except TimeoutError:
                raise ApiError(503, "timeout",
                               f"the preview took longer than {settings.api_preview_timeout} s "
                               "(SEGMENTFLOW_API_PREVIEW_TIMEOUT); retry later",
                               headers={"Retry-After": "5"}) from None


def preview_answer(result: Any) -> dict[str, Any]:
    """This worker's share of a preview, as the API answers it."""
    since = result.history_since
    return {
        "size": result.size, "contacts_scanned": result.scanned, "sample": result.sample,
        "impact": {"join": result.joins, "leave": result.leaves,
                   "join_sample": result.join_sample, "leave_sample": result.leave_sample},
        "history": {
            "retained_since": since.isoformat() if since is not None else None,
            "note": (f"'ever' and date ranges count the interactions retained, since "
                     f"{since.isoformat()}" if since is not None and result.reads_all_history
                     else None)},
    }


def merge_preview(answer: dict[str, Any], peer: dict[str, Any], sample: int) -> None:
    """Add a peer worker's share (other partitions) to ``answer``."""
    answer["size"] += peer["size"]
    answer["contacts_scanned"] += peer["contacts_scanned"]
    answer["sample"] += peer["sample"][:max(0, sample - len(answer["sample"]))]
    mine, theirs = answer["impact"], peer.get("impact") or {}
    for key in ("join", "leave"):
        mine[key] += theirs.get(key, 0)
        listed = mine[f"{key}_sample"]
        listed += theirs.get(f"{key}_sample", [])[:max(0, sample - len(listed))]
    if answer["history"]["note"] is None:
        answer["history"] = peer.get("history") or answer["history"]
