"""Behavioural conditions: performed, last performed, aggregates.

Relative windows (``within last 30 days``) scan the contact's kept history
and report the exact instant the answer could next change (an event entering
or leaving the window). Ever and absolute-range windows are running
"features" folded as events arrive, so they stay exact however little
history is kept.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import orjson

from engine.context import Ctx, EventAt
from engine.deps import Deps, EventFilter, FeatureSpec, HistoryNeed, merge_deps
from engine.errors import CompileError
from engine.nodes.fields import getter, lit_text
from engine.nodes.profile import literal_interval, relative_offset, static_value_test
from engine.registry import CNode, Env, ValueDue, compile_node, register
from engine.timeutil import UNIT_US, from_us, midnight_us, to_us
from engine.trace import Trace
from engine.values import NUM, add_number, value_key
from models.conditions import (
    AggregateCondition,
    AllOf,
    Comparison,
    Condition,
    DateLiteral,
    DateTimeLiteral,
    EverWindow,
    LastPerformed,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
    Window,
)

__all__ = ["finalize", "fold_value", "most_frequent"]

_T = itemgetter(0)
Pred = Callable[[dict[str, Any]], bool] | None
TimedPred = Callable[[Any], ValueDue] | None


def _where(where: Condition | None, env: Env) -> tuple[Pred, frozenset[str], str, TimedPred]:
    """(predicate on props, properties read, text, time-aware predicate or
    None). A time-relative ``where`` (``where due_at within next 7 days``)
    reads the engine clock, so it cannot be folded into a running feature."""
    if where is None:
        return None, frozenset(), "", None
    node = compile_node(where, env.event_scope())
    return node.ev, node.deps.fields, f" where {node.text}", node.vd


def _event_filter(pred: Pred, timed: bool, lo: int | None, hi: int | None,
                  where: Condition | None = None) -> EventFilter | None:
    """Which new events can change the condition: those passing a static
    ``where`` and falling inside an absolute range. None: every event.
    ``where``: its AST, for the property value every passing event carries
    (``required``, read by the catalogue's routing index)."""
    if timed or (pred is None and lo is None):
        return None
    f: Any
    if lo is None:
        p = pred
        f = lambda t, props: p(props)  # type: ignore[misc]  # noqa: E731
    elif pred is None:
        f = lambda t, props: lo <= t < hi  # type: ignore[operator]  # noqa: E731
    else:
        p2 = pred
        f = lambda t, props: lo <= t < hi and p2(props)  # type: ignore[operator]  # noqa: E731
    f.required = required_value(where)
    return f  # type: ignore[no-any-return]


def required_value(where: Condition | None) -> tuple[str, str] | None:
    """``(property, text)`` when every event passing ``where`` has that
    property equal to that string: a top-level ``property = "text"``, alone
    or in an ``and`` (the string test is ``type(v) is str and v == text``)."""
    if isinstance(where, Comparison):
        if where.op == "=" and type(where.value) is str and "." not in where.field:
            return where.field, where.value
        return None
    if isinstance(where, AllOf):
        for arg in where.args:
            found = required_value(arg)
            if found is not None:
                return found
    return None


def _filtered(etype: str, f: EventFilter | None) -> Deps:
    return Deps(event_types=frozenset([etype]), event_filters=((etype, f),))


_EVER_US = 1 << 62  # "keep everything" lookback for history-scanned ever windows


def _timed_scan(
    ctx: Ctx, etype: str, pvd: Callable[[Any], ValueDue], w: Window, tzname: str
) -> tuple[list[list[Any]], int | None]:
    """Kept events inside the window whose time-relative ``where`` holds now,
    and the next instant either could change (conservative)."""
    hist = ctx.history.get(etype)
    if not hist:
        return [], None
    now = ctx.now
    due: int | None = None
    out: list[list[Any]] = []
    if isinstance(w, RelativeWindow):
        a, b = _relative(w)
        events = hist[bisect_left(hist, now - b, key=_T):]
    else:
        a = b = 0
        if isinstance(w, RangeWindow):
            lo, hi = range_bounds(w, tzname)
            events = [e for e in hist if lo <= e[0] < hi]
        else:
            events = hist
    relative = isinstance(w, RelativeWindow)
    for e in events:
        m, d = pvd(EventAt(e[2], now))
        inside = True
        if relative:
            t = e[0]
            inside = t - a <= now
            edge = t + b + 1 if inside else t - a
            d = edge if d is None or edge < d else d
        if d is not None and (due is None or d < due):
            due = d
        if m and inside:
            out.append(e)
    return out, due


def _timed_need(etype: str, w: Window, props: frozenset[str]) -> Deps:
    lookback = _relative(w)[1] if isinstance(w, RelativeWindow) else _EVER_US
    return Deps(time=True, history=((etype, HistoryNeed(lookback, props)),))


def range_bounds(w: RangeWindow, tzname: str) -> tuple[int, int]:
    """``[lo, hi)`` in us: a date start is its local midnight, a date end
    covers that whole local day."""
    lo = literal_interval(w.start, tzname)[0]
    hi = literal_interval(w.end, tzname)[1]
    return lo, hi


def _window_text(w: Window) -> str:
    if isinstance(w, RelativeWindow):
        return f" within {w.direction} {w.amount} {w.unit}"
    if isinstance(w, RangeWindow):
        return f" between {lit_text(w.start)} and {lit_text(w.end)}"
    return " ever"


def _feature_key(*parts: Any) -> str:
    raw = "|".join(str(p) for p in parts).encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _relative(w: RelativeWindow) -> tuple[int, int]:
    """(a, b): an event at t is inside the window while now is in [t-a, t+b]."""
    d = w.amount * UNIT_US[w.unit]
    return (0, d) if w.direction == "last" else (d, 0)


def _scan(ctx: Ctx, etype: str, a: int, b: int, pred: Pred) -> list[list[Any]]:
    """Matching kept events whose window membership is now or later."""
    hist = ctx.history.get(etype)
    if not hist:
        return []
    i = bisect_left(hist, ctx.now - b, key=_T)
    if pred is None:
        return hist[i:]
    return [e for e in hist[i:] if pred(e[2])]


# --- counting -------------------------------------------------------------------


def _count_test(op: str, n: int) -> Callable[[int], bool]:
    if op == "at least":
        return lambda c: c >= n
    if op == "at most":
        return lambda c: c <= n
    return lambda c: c == n


@register(Performed)
def _performed(node: Performed, env: Env) -> CNode:
    env.require_contact("'performed'")
    pred, props, wtext, pvd = _where(node.where, env)
    test = _count_test(node.count_op, node.count)
    etype = node.event_type
    text = (f"performed {etype}{wtext} {node.count_op} {node.count} times"
            f"{_window_text(node.window)}")
    w = node.window
    _lo, _hi = range_bounds(w, env.tzname) if isinstance(w, RangeWindow) else (None, None)
    base = _filtered(etype, _event_filter(pred, pvd is not None, _lo, _hi, node.where))
    threshold = f"{node.count_op} {node.count}"

    if pvd is not None:
        tz = env.tzname

        def tvd(ctx: Ctx) -> ValueDue:
            evs, due = _timed_scan(ctx, etype, pvd, w, tz)
            return test(len(evs)), due

        def tev(ctx: Ctx) -> bool:
            return tvd(ctx)[0]

        def ttrace(ctx: Ctx) -> Trace:
            n = len(_timed_scan(ctx, etype, pvd, w, tz)[0])
            return Trace(text, test(n), seen=f"{n} times", threshold=threshold)

        deps = merge_deps([base, _timed_need(etype, w, props)])
        return CNode(tev, tvd, ttrace, deps, text)

    if isinstance(w, RelativeWindow):
        a, b = _relative(w)

        def count_now(ctx: Ctx) -> int:
            hist = ctx.history.get(etype)
            if not hist:
                return 0
            now = ctx.now
            i = bisect_left(hist, now - b, key=_T)
            j = bisect_right(hist, now + a, key=_T)
            if pred is None:
                return j - i
            return sum(1 for k in range(i, j) if pred(hist[k][2]))

        def vd(ctx: Ctx) -> ValueDue:
            hist = ctx.history.get(etype)
            if not hist:
                return test(0), None
            now = ctx.now
            i = bisect_left(hist, now - b, key=_T)
            # matching events still (or not yet) inside the window, oldest first
            ts = [e[0] for e in hist[i:] if pred is None or pred(e[2])]
            if not ts or ts[-1] - a <= now:
                # nothing enters later: the count only falls, one event at a time
                cur = len(ts)
                val = test(cur)
                for k in range(cur):
                    if test(cur - k - 1) != val:
                        return val, ts[k] + b + 1
                return val, None
            cur = 0
            pts: list[tuple[int, int]] = []
            for t in ts:
                if t - a <= now:
                    cur += 1
                else:
                    pts.append((t - a, 1))
                pts.append((t + b + 1, -1))
            val = test(cur)
            pts.sort()
            c, k, n = cur, 0, len(pts)
            while k < n:
                tm = pts[k][0]
                while k < n and pts[k][0] == tm:
                    c += pts[k][1]
                    k += 1
                if test(c) != val:
                    return val, tm
            return val, None

        def ev(ctx: Ctx) -> bool:
            return test(count_now(ctx))

        def trace(ctx: Ctx) -> Trace:
            c = count_now(ctx)
            return Trace(text, test(c), seen=f"{c} times", threshold=threshold)

        need = HistoryNeed(b, props)
        deps = merge_deps([base, Deps(time=True, history=((etype, need),))])
        return CNode(ev, vd, trace, deps, text)

    lo, hi = range_bounds(w, env.tzname) if isinstance(w, RangeWindow) else (None, None)

    def fold(v: int, t: int, p: dict[str, Any]) -> int:
        if lo is not None and not (lo <= t < hi):  # type: ignore[operator]
            return v
        if pred is not None and not pred(p):
            return v
        return v + 1

    key = _feature_key("count", etype, node.where.model_dump_json() if node.where else "",
                       lo, hi, env.tzname if node.where else "")
    spec = FeatureSpec(key, etype, "count", 0, fold, props)

    def ev2(ctx: Ctx) -> bool:
        return test(ctx.feature(spec))

    def trace2(ctx: Ctx) -> Trace:
        c = ctx.feature(spec)
        return Trace(text, test(c), seen=f"{c} times", threshold=threshold)

    return CNode(ev2, None, trace2, merge_deps([base, Deps(features=(spec,))]), text)


# --- recency ---------------------------------------------------------------------


@register(LastPerformed)
def _last_performed(node: LastPerformed, env: Env) -> CNode:
    """Latest matching event ever (a running max), against a point in time."""
    env.require_contact("'last performed'")
    pred, props, wtext, pvd = _where(node.where, env)
    etype = node.event_type
    at = node.at
    before = node.op == "before"
    text = f"last performed {etype}{wtext} {node.op} {lit_text(at)}"

    def fold(v: int | None, t: int, p: dict[str, Any]) -> int | None:
        if pred is not None and not pred(p):
            return v
        return t if v is None or t > v else v

    key = _feature_key("last", etype, node.where.model_dump_json() if node.where else "",
                       env.tzname if node.where else "")
    spec = FeatureSpec(key, etype, "last", None, fold, props)
    deps = merge_deps([_filtered(etype, _event_filter(pred, pvd is not None, None, None,
                                                     node.where)),
                       Deps(features=(spec,))])
    tz = env.tzname

    def latest(ctx: Ctx) -> tuple[int | None, int | None]:
        """(latest matching event, next instant that could change)."""
        if pvd is None:
            return ctx.feature(spec), None
        evs, due = _timed_scan(ctx, etype, pvd, EverWindow(), tz)
        return (max(e[0] for e in evs) if evs else None), due

    if pvd is not None:
        deps = merge_deps([_filtered(etype, None), _timed_need(etype, EverWindow(), props)])

    if isinstance(at, RelativeTime):
        off = relative_offset(at)

        def vd(ctx: Ctx) -> ValueDue:
            last, wdue = latest(ctx)
            if last is None:
                return False, wdue
            now = ctx.now
            if before:  # last < now + off  <=>  now >= last - off + 1
                e = last - off + 1
                val, due = now >= e, (e if now < e else None)
            else:
                s = last - off  # last > now + off  <=>  now < last - off
                val, due = now < s, (s if now < s else None)
            if wdue is not None and (due is None or wdue < due):
                due = wdue
            return val, due

        def ev(ctx: Ctx) -> bool:
            return vd(ctx)[0]

        vd_: Callable[[Ctx], ValueDue] | None = vd
        deps = merge_deps([deps, Deps(time=True)])
    else:
        if isinstance(at, DateLiteral):  # compare local days
            o = at.date.toordinal()
            bound = midnight_us(o, env.tzname) if before else midnight_us(o + 1, env.tzname) - 1
        else:
            assert isinstance(at, DateTimeLiteral)
            bound = to_us(at.datetime)

        def check(last: int | None) -> bool:
            if last is None:
                return False
            return last < bound if before else last > bound

        def ev(ctx: Ctx) -> bool:
            return check(latest(ctx)[0])

        vd_ = None
        if pvd is not None:
            def vd_timed(ctx: Ctx) -> ValueDue:
                last, wdue = latest(ctx)
                return check(last), wdue

            vd_ = vd_timed

    def trace(ctx: Ctx) -> Trace:
        last = latest(ctx)[0]
        seen = from_us(last).isoformat() if last is not None else "never"
        return Trace(text, ev(ctx), seen=seen, threshold=f"{node.op} {lit_text(at)}")

    return CNode(ev, vd_, trace, deps, text)


# --- aggregates ------------------------------------------------------------------


def fold_value(func: str, acc: Any, v: Any, t: int, cap: int) -> Any:
    """Fold one property value into an aggregate accumulator (pure)."""
    if func in ("sum", "avg"):
        if type(v) in NUM:
            return [add_number(acc[0], v), acc[1] + 1]
        return acc
    if func == "min":
        return v if type(v) in NUM and (acc is None or v < acc) else acc
    if func == "max":
        return v if type(v) in NUM and (acc is None or v > acc) else acc
    k = value_key(v)
    if k is None:
        return acc
    e = acc.get(k)
    if e is None:
        if len(acc) >= cap:
            return acc
        return {**acc, k: [1, t]}
    return {**acc, k: [e[0] + 1, max(e[1], t)]}


def most_frequent(counts: dict[str, list[int]]) -> Any:
    """Highest count; ties go to the most recently seen value, then the
    smallest JSON text (deterministic)."""
    k = min(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[0]
    return orjson.loads(k)


def finalize(func: str, acc: Any) -> Any:
    """The aggregate's value, or None when there was nothing to aggregate."""
    if func == "sum":
        return acc[0] if acc[1] else None
    if func == "avg":
        return acc[0] / acc[1] if acc[1] else None
    if func in ("min", "max"):
        return acc
    if not acc:
        return None
    if func == "count distinct":
        return len(acc)
    return most_frequent(acc)


def _reducer(func: str, get: Callable[[Any], Any], cap: int) -> Callable[[list[list[Any]]], Any]:
    """Aggregate a list of kept events (time order) in one specialised pass."""
    if func in ("sum", "avg"):
        avg = func == "avg"

        def total(evs: list[list[Any]]) -> Any:
            s, n = 0, 0
            for e in evs:
                v = get(e[2])
                if type(v) in NUM:
                    s = add_number(s, v)
                    n += 1
            if not n:
                return None
            return s / n if avg else s

        return total
    if func in ("min", "max"):
        pick = min if func == "min" else max

        def extreme(evs: list[list[Any]]) -> Any:
            vals = [v for e in evs if type(v := get(e[2])) in NUM]
            return pick(vals) if vals else None

        return extreme

    def generic(evs: list[list[Any]]) -> Any:
        acc: Any = {}
        for e in evs:
            acc = fold_value(func, acc, get(e[2]), e[0], cap)
        return finalize(func, acc)

    return generic


def initial(func: str) -> Any:
    if func in ("sum", "avg"):
        return [0, 0]
    if func in ("min", "max"):
        return None
    return {}


@register(AggregateCondition)
def _aggregate(node: AggregateCondition, env: Env) -> CNode:
    env.require_contact("an aggregate")
    if isinstance(node.value, RelativeTime):
        raise CompileError(f"segment {env.segment_id!r}: an aggregate cannot compare with a "
                           "relative time")
    pred, props, wtext, pvd = _where(node.where, env)
    get, pdeps = getter(node.property, env.event_scope())
    props = props | pdeps.fields
    func = node.func
    etype = node.event_type
    cap = env.max_distinct
    try:
        test = static_value_test(node.op, node.value, env.tzname)
    except CompileError as exc:
        raise CompileError(f"segment {env.segment_id!r}: {exc}") from None
    text = (f"{func} {node.property} of {etype}{wtext}{_window_text(node.window)} "
            f"{node.op} {lit_text(node.value)}")
    threshold = f"{node.op} {lit_text(node.value)}"
    w = node.window
    _lo, _hi = range_bounds(w, env.tzname) if isinstance(w, RangeWindow) else (None, None)
    base = _filtered(etype, _event_filter(pred, pvd is not None, _lo, _hi, node.where))
    # sum and avg share one accumulator
    acc_kind = "sumn" if func in ("sum", "avg") else func

    if pvd is not None:
        tz = env.tzname
        reduce_t = _reducer(func, get, cap)

        def avd(ctx: Ctx) -> ValueDue:
            evs, due = _timed_scan(ctx, etype, pvd, w, tz)
            return test(reduce_t(evs) if evs else None), due

        def aev(ctx: Ctx) -> bool:
            return avd(ctx)[0]

        def atrace(ctx: Ctx) -> Trace:
            evs, _ = _timed_scan(ctx, etype, pvd, w, tz)
            v = reduce_t(evs) if evs else None
            return Trace(text, test(v), seen=v, threshold=threshold)

        deps = merge_deps([base, _timed_need(etype, w, props)])
        return CNode(aev, avd, atrace, deps, text)

    if isinstance(w, RelativeWindow):
        a, b = _relative(w)

        reduce = _reducer(func, get, cap)

        def scan(ctx: Ctx) -> tuple[Any, int | None]:
            """(aggregate now, next instant an event enters or leaves)."""
            hist = ctx.history.get(etype)
            if not hist:
                return None, None
            now = ctx.now
            i = bisect_left(hist, now - b, key=_T)
            inside: list[list[Any]] = []
            due: int | None = None
            for e in hist[i:]:
                if pred is not None and not pred(e[2]):
                    continue
                t = e[0]
                if t - a <= now:
                    inside.append(e)
                    c = t + b + 1
                else:
                    c = t - a
                if due is None or c < due:
                    due = c
            return (reduce(inside) if inside else None), due

        def value_now(ctx: Ctx) -> Any:
            return scan(ctx)[0]

        def vd(ctx: Ctx) -> ValueDue:
            v, due = scan(ctx)
            return test(v), due

        def ev(ctx: Ctx) -> bool:
            return test(value_now(ctx))

        def trace(ctx: Ctx) -> Trace:
            v = value_now(ctx)
            return Trace(text, test(v), seen=v, threshold=threshold)

        need = HistoryNeed(b, props)
        deps = merge_deps([base, Deps(time=True, history=((etype, need),))])
        return CNode(ev, vd, trace, deps, text)

    lo, hi = range_bounds(w, env.tzname) if isinstance(w, RangeWindow) else (None, None)

    def fold(acc: Any, t: int, p: dict[str, Any]) -> Any:
        if lo is not None and not (lo <= t < hi):  # type: ignore[operator]
            return acc
        if pred is not None and not pred(p):
            return acc
        return fold_value(func, acc, get(p), t, cap)

    key = _feature_key(acc_kind, etype, node.where.model_dump_json() if node.where else "",
                       lo, hi, node.property, env.tzname if node.where else "")
    spec = FeatureSpec(key, etype, acc_kind, initial(func), fold, props)

    def ev2(ctx: Ctx) -> bool:
        return test(finalize(func, ctx.feature(spec)))

    def trace2(ctx: Ctx) -> Trace:
        v = finalize(func, ctx.feature(spec))
        return Trace(text, test(v), seen=v, threshold=threshold)

    return CNode(ev2, None, trace2, merge_deps([base, Deps(features=(spec,))]), text)
