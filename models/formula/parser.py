"""Formula text → condition tree.

A module-level LALR(1) lark parser (built once; lark parsers are reusable
and safe to share between threads for ``parse`` calls) produces a parse
tree; ``_ToCondition`` turns it into ``models.conditions`` nodes, checking
semantics (units, counts, list operators, event types…) with positions so
every problem is a ``FormulaError`` at a line and column. Never ``eval``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any, NoReturn

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta

from models.conditions import (
    AggregateCondition,
    AllOf,
    AnniversaryWindow,
    AnyOf,
    Between,
    Bucket,
    Comparison,
    Condition,
    Consented,
    DateLiteral,
    DateTimeLiteral,
    DateWithin,
    EverWindow,
    Exists,
    InSegment,
    LastPerformed,
    Negation,
    Performed,
    RangeWindow,
    RelativeTime,
    RelativeWindow,
)
from models.formula import rules
from models.formula.errors import FormulaError
from models.formula.limits import MAX_FORMULA_LENGTH, MAX_NESTING, nesting_problem

__all__ = ["clear_parse_cache", "event_type_references", "parse_formula"]

_GRAMMAR = resources.files("models.formula").joinpath("formula.lark").read_text("utf-8")

PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer="contextual",
    propagate_positions=True,
    maybe_placeholders=True,
)


# Parsed formulas by exact text. Every worker validates a stored definition
# again where it applies it (ingest, then each evaluator partition), and a
# definition is validated field by field then as a whole: without this a
# definition's formula was parsed 2 + 2 x partitions times per process, on
# the event loop (about 15 µs per character, 0.1-0.25 s for a maximal
# formula). Condition trees are frozen models and never mutated, so one
# parse can be shared. Only successful parses of exactly the same text are
# reused; bounded by entries and by total formula characters (a maximal
# formula's tree keeps about 0.3 MB: the cache holds at most about 10 MB).
PARSE_CACHE_MAX_ENTRIES = 256
PARSE_CACHE_MAX_CHARS = 256 * 1024
_cache: OrderedDict[str, Condition] = OrderedDict()
_cache_chars = 0
_cache_lock = threading.Lock()


def parse_formula(text: str) -> Condition:
    """Parse formula text into a condition tree; raise ``FormulaError``.
    The result may be shared with other callers: treat it as read-only."""
    if not isinstance(text, str):
        raise TypeError(f"formula must be a string, not {type(text).__name__}")
    if not text.strip():
        raise FormulaError("the formula is empty", 1, 1, ["a condition"])
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"the formula is {len(text)} characters long; at most "
                           f"{MAX_FORMULA_LENGTH} are allowed (MAX_FORMULA_LENGTH)", 1, 1)
    with _cache_lock:
        hit = _cache.get(text)
        if hit is not None:
            _cache.move_to_end(text)
            return hit
    result = _parse(text)
    _remember(text, result)
    return result


def event_type_references(text: str) -> list[tuple[str, int, int]]:
    """``(event type, line, column)`` of every event type a formula names,
    in order (for checks against the declared event types, which the parser
    does not know). The formula must parse (``parse_formula`` first)."""
    tree = PARSER.parse(text)
    found: list[tuple[str, int, int]] = []
    for node in tree.iter_subtrees_topdown():
        if node.data == "event":
            line, column = _meta_pos(node.meta)
            found.append((_name(node.children[0].children[0]), line, column))
    return found


def _remember(text: str, result: Condition) -> None:
    global _cache_chars
    if len(text) > PARSE_CACHE_MAX_CHARS:
        return
    with _cache_lock:
        if text in _cache:
            return
        _cache[text] = result
        _cache_chars += len(text)
        while len(_cache) > PARSE_CACHE_MAX_ENTRIES or _cache_chars > PARSE_CACHE_MAX_CHARS:
            old, _ = _cache.popitem(last=False)
            _cache_chars -= len(old)


def clear_parse_cache() -> None:
    global _cache_chars
    with _cache_lock:
        _cache.clear()
        _cache_chars = 0


def _parse(text: str) -> Condition:
    try:
        tree = PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    try:
        result: Condition = _ToCondition().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, FormulaError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, ValueError):  # a node refused its fields
            line, column = _meta_pos(getattr(exc.obj, "meta", Meta()))
            raise FormulaError(str(exc.orig_exc), line, column) from None
        raise
    except RecursionError:
        # Thousands of nested "not"s; refuse rather than crash the caller.
        raise FormulaError(f"the formula is nested too deeply; at most {MAX_NESTING} levels "
                           "are allowed (MAX_NESTING)", 1, 1) from None
    if (problem := nesting_problem(result)) is not None:
        raise FormulaError(problem, 1, 1)
    return result


# --- positions carried through the transformation -------------------------------


@dataclass(frozen=True, slots=True)
class _Lit:
    """A literal value with where it was written."""

    value: Any
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class _Field:
    path: str
    line: int
    column: int


def _fail(problem: str, line: int, column: int, expected: list[str] | None = None) -> NoReturn:
    raise FormulaError(problem, line, column, expected)


def _tok_fail(tok: Token, problem: str, expected: list[str] | None = None) -> NoReturn:
    _fail(problem, tok.line or 1, tok.column or 1, expected)


def _meta_pos(meta: Meta) -> tuple[int, int]:
    if getattr(meta, "empty", True):
        return 1, 1
    return meta.line, meta.column


def _number(tok: Token) -> int | float:
    text = str(tok)
    if any(c in text for c in ".eE"):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            _tok_fail(tok, f"number {text} is out of range")
        return value
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        _tok_fail(tok, f"number {text[:20]}… is out of range")


def _whole(tok: Token, what: str) -> int:
    """A non-negative integer (counts, window sizes)."""
    value = _number(tok)
    if isinstance(value, float):
        _tok_fail(tok, f"{what} must be a whole number, not {tok}", ["a whole number"])
    if value < 0:
        _tok_fail(tok, f"{what} cannot be negative ({tok})", ["a whole number ≥ 0"])
    return value


def _unit(tok: Token) -> Any:
    unit = rules.unit_from_word(str(tok))
    if unit is None:
        _tok_fail(tok, f'unknown time unit "{tok}"', list(rules.TIME_UNITS))
    return unit


def _date(tok: Token) -> DateLiteral:
    try:
        return DateLiteral(date=date.fromisoformat(str(tok)))
    except ValueError:
        _tok_fail(tok, f"{tok} is not a valid date (YYYY-MM-DD)")


def _datetime(tok: Token) -> DateTimeLiteral:
    text = str(tok).upper()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        _tok_fail(tok, f"{tok} is not a valid date-time")
    if value.tzinfo is None:
        _tok_fail(
            tok,
            f"date-time {tok} has no time zone; add Z or an offset like +02:00",
            ["Z", "an offset like +02:00"],
        )
    return DateTimeLiteral(datetime=value)


def _name(tok: Token) -> str:
    text = str(tok)
    if tok.type == "QUOTED_NAME":
        text = text[1:-1].replace("``", "`")
        if "." in text:
            _tok_fail(tok, f"name {tok} cannot contain '.': dots separate nested fields")
    return text


_COUNT_OPS = {"LEAST": "at least", "MOST": "at most", "EXACTLY": "exactly"}


@v_args(meta=True)
class _ToCondition(Transformer[Token, Condition]):
    """Parse tree → condition nodes, validating as it goes (bottom-up)."""

    # logic
    def or_expr(self, meta: Meta, children: list[Any]) -> AnyOf:
        return AnyOf(args=children)

    def and_expr(self, meta: Meta, children: list[Any]) -> AllOf:
        return AllOf(args=children)

    def negation(self, meta: Meta, children: list[Any]) -> Negation:
        return Negation(arg=children[0])

    # profile / firmographic conditions
    def compare(self, meta: Meta, children: list[Any]) -> Comparison:
        field, (op, value, _lit) = children
        return Comparison(field=field.path, op=op, value=value)

    def exists(self, meta: Meta, children: list[Any]) -> Exists:
        return Exists(field=children[0].path)

    def not_exists(self, meta: Meta, children: list[Any]) -> Exists:
        return Exists(field=children[0].path, negated=True)

    def between(self, meta: Meta, children: list[Any]) -> Between:
        field, low, high = children
        problem = rules.check_between(low.value, high.value)
        if problem:
            _fail(problem, high.line, high.column)
        return Between(field=field.path, low=low.value, high=high.value)

    def anniversary(self, meta: Meta, children: list[Any]) -> AnniversaryWindow:
        field, direction, amount, unit = children
        if _unit(unit) != "days":
            _tok_fail(unit, f'anniversary windows count days, not "{unit}"', ["days"])
        return AnniversaryWindow(
            field=field.path, direction=direction, days=_whole(amount, "the number of days")
        )

    def date_within(self, meta: Meta, children: list[Any]) -> DateWithin:
        field, direction, amount, unit = children
        return DateWithin(field=field.path, window=self._window(direction, amount, unit))

    def in_segment(self, meta: Meta, children: list[Any]) -> InSegment:
        tok = children[0]
        segment_id = json.loads(str(tok))
        if not segment_id:
            _tok_fail(tok, "the segment id is empty", ["a segment id"])
        return InSegment(segment_id=segment_id)

    def bucket(self, meta: Meta, children: list[Any]) -> Bucket:
        _kw, tok, (op, value, lit) = children
        seed = json.loads(str(tok))
        problem = rules.check_bucket(seed, "=", 0)
        if problem:
            _tok_fail(tok, problem, ["a seed"])
        problem = rules.check_bucket(seed, op, value)
        if problem:
            _fail(problem, lit.line, lit.column, ["a whole number from 0 to 10000"])
        return Bucket(seed=seed, op=op, value=value)

    def consented(self, meta: Meta, children: list[Any]) -> Consented:
        _kw, purpose, channel, topic_tok = children
        problem = rules.check_consent_channel(channel)
        if problem:
            _fail(problem, *_meta_pos(meta), ["a channel (email, sms, push…)"])
        topic = None
        if topic_tok is not None:
            topic = json.loads(str(topic_tok))
            problem = rules.check_consent_topic(topic)
            if problem:
                _tok_fail(topic_tok, problem, ["a topic"])
        return Consented(channel=channel, purpose=purpose or "commercial", topic=topic)

    def consent_purpose(self, meta: Meta, children: list[Any]) -> str:
        return str(children[0]).lower()

    # behavioural conditions
    def performed(self, meta: Meta, children: list[Any]) -> Performed:
        event, where, count, window = children
        fields: dict[str, Any] = {"event_type": event, "where": where}
        if count is not None:
            fields["count_op"], fields["count"] = count
        if window is not None:
            fields["window"] = window
        return Performed(**fields)

    def last_performed(self, meta: Meta, children: list[Any]) -> LastPerformed:
        _last, event, where, when, instant = children
        return LastPerformed(event_type=event, where=where, op=when, at=instant.value)

    def aggregate(self, meta: Meta, children: list[Any]) -> AggregateCondition:
        func, field, event, where, window, (op, value, lit) = children
        problem = rules.check_aggregate_value(value)
        if problem:
            _fail(problem, lit.line, lit.column)
        return AggregateCondition(
            func=func,
            property=field.path,
            event_type=event,
            where=where,
            window=window if window is not None else EverWindow(),
            op=op,
            value=value,
        )

    def where(self, meta: Meta, children: list[Any]) -> Any:
        problem = rules.check_where(children[0])
        if problem:
            _fail(problem, *_meta_pos(meta))
        return children[0]

    def count(self, meta: Meta, children: list[Any]) -> tuple[str, int]:
        kind, amount = children
        return _COUNT_OPS[kind.type], _whole(amount, "the count")

    def relative_window(self, meta: Meta, children: list[Any]) -> RelativeWindow:
        return self._window(*children)

    def ever_window(self, meta: Meta, children: list[Any]) -> EverWindow:
        return EverWindow()

    def range_window(self, meta: Meta, children: list[Any]) -> RangeWindow:
        start, end = children
        problem = rules.check_range(start.value, end.value)
        if problem:
            _fail(problem, end.line, end.column)
        return RangeWindow(start=start.value, end=end.value)

    @staticmethod
    def _window(direction: str, amount: Token, unit: Token) -> RelativeWindow:
        return RelativeWindow(
            direction=direction,  # type: ignore[arg-type]
            amount=_whole(amount, "the window size"),
            unit=_unit(unit),
        )

    # operators and values
    def _checked(self, op: str, value: Any, lit: _Lit) -> tuple[str, Any, _Lit]:
        problem = rules.check_compare_value(op, value)
        if problem:
            _fail(problem, lit.line, lit.column)
        return op, value, lit

    def op_cmp(self, meta: Meta, children: list[Any]) -> tuple[str, Any, _Lit]:
        op, lit = children
        return self._checked(str(op), lit.value, lit)

    def op_in(self, meta: Meta, children: list[Any]) -> tuple[str, Any, _Lit]:
        lit = children[0]
        return self._checked("in", lit.value, lit)

    def op_not_in(self, meta: Meta, children: list[Any]) -> tuple[str, Any, _Lit]:
        lit = children[0]
        return self._checked("not in", lit.value, lit)

    def op_contains(self, meta: Meta, children: list[Any]) -> tuple[str, Any, _Lit]:
        lit = children[0]
        return self._checked("contains", lit.value, lit)

    def op_starts_with(self, meta: Meta, children: list[Any]) -> tuple[str, Any, _Lit]:
        lit = children[0]
        return self._checked("starts with", lit.value, lit)

    def value_list(self, meta: Meta, children: list[Any]) -> _Lit:
        for item in children:
            if item is not None:
                problem = rules.check_compare_value("in", [item.value])
                if problem:  # point at the item, not at the list
                    _fail(problem.replace('"in" lists', "lists"), item.line, item.column)
        line, column = _meta_pos(meta)
        return _Lit([c.value for c in children if c is not None], line, column)

    def scalar_instead_of_list(self, meta: Meta, children: list[Any]) -> _Lit:
        lit: _Lit = children[0]
        return lit

    def value(self, meta: Meta, children: list[Any]) -> _Lit:
        lit: _Lit = children[0]
        return lit

    def instant(self, meta: Meta, children: list[Any]) -> _Lit:
        lit: _Lit = children[0]
        return lit

    @staticmethod
    def _lit(tok: Token, value: Any) -> _Lit:
        return _Lit(value, tok.line or 1, tok.column or 1)

    def string(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], json.loads(str(children[0])))

    def number(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], _number(children[0]))

    def date(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], _date(children[0]))

    def datetime(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], _datetime(children[0]))

    def true(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], True)

    def false(self, meta: Meta, children: list[Any]) -> _Lit:
        return self._lit(children[0], False)

    def ago(self, meta: Meta, children: list[Any]) -> _Lit:
        amount, unit = children
        rel = RelativeTime(amount=_whole(amount, "the amount"), unit=_unit(unit), direction="ago")
        return self._lit(amount, rel)

    def from_now(self, meta: Meta, children: list[Any]) -> _Lit:
        amount, unit = children
        rel = RelativeTime(
            amount=_whole(amount, "the amount"), unit=_unit(unit), direction="from_now"
        )
        return self._lit(amount, rel)

    # names
    def when(self, meta: Meta, children: list[Any]) -> str:
        return str(children[0]).lower()

    def direction(self, meta: Meta, children: list[Any]) -> str:
        return str(children[0]).lower()

    def agg_func(self, meta: Meta, children: list[Any]) -> str:
        return " ".join(str(c).lower() for c in children)

    def field(self, meta: Meta, children: list[Any]) -> _Field:
        line, column = _meta_pos(meta)
        return _Field(".".join(children), line, column)

    def event(self, meta: Meta, children: list[Any]) -> str:
        name = str(children[0])
        problem = rules.check_event_type(name)
        if problem:
            line, column = _meta_pos(meta)
            _fail(problem, line, column, ["an event type name"])
        return name

    def name(self, meta: Meta, children: list[Any]) -> str:
        return _name(children[0])


# --- syntax errors -------------------------------------------------------------

_VALUE_TERMS = frozenset({"STRING", "NUMBER", "DATE", "DATETIME", "TRUE", "FALSE"})
_VALUE_PHRASE = "a value (string, number, date…)"
_CONDITION_TERMS = frozenset(
    {
        "IDENT",
        "QUOTED_NAME",
        "_PERFORMED",
        "LAST",
        "SUM",
        "AVG",
        "MIN",
        "MAX",
        "COUNT",
        "MOST",
        "_IN",
        "_NOT",
        "_LPAR",
        "BUCKET",
        "CONSENTED",
    }
)
_CONDITION_PHRASE = (
    'a condition (a field, "performed", "last performed", an aggregate, "in segment", '
    '"bucket(…)", "consented to", "not" or "(")'
)
_OPERATOR_TERMS = frozenset(
    {"CMP_OP", "_IN", "_NOT", "_EXISTS", "_BETWEEN", "_CONTAINS", "_STARTS", "_WITHIN"}
)
_OPERATOR_PHRASE = (
    "an operator (=, !=, <, <=, >, >=, in, not in, contains, starts with, exists, "
    "not exists, between, within)"
)

# Order and wording of what an error says was expected.
_PHRASES: dict[str, str] = {
    "IDENT": "a name",
    "QUOTED_NAME": "a `quoted name`",
    "CMP_OP": "a comparison operator (=, !=, <, <=, >, >=)",
    "STRING": "a string",
    "NUMBER": "a number",
    "DATE": "a date (YYYY-MM-DD)",
    "DATETIME": "a date-time (2026-01-01T09:30:00Z)",
    "TRUE": '"true"',
    "FALSE": '"false"',
    "UNIT": "a time unit (minutes, hours, days, weeks)",
    "_LPAR": '"("',
    "_RPAR": '")"',
    "_COMMA": '","',
    "_DOT": '"."',
    "$END": "the end of the formula",
}


# Keywords that only make sense with the word that follows them.
_KEYWORD_PHRASES: dict[str, str] = {
    "_TIMES": '"times"',
    "_STARTS": '"starts with"',
    "_AT": '"at least" / "at most"',
    "_FROM": '"from now"',
    "BUCKET": '"bucket(…)"',
    "CONSENTED": '"consented to"',
    "_TO": '"to"',
    "_FOR": '"for"',
    "COMMERCIAL": '"commercial"',
    "TRANSACTIONAL": '"transactional"',
}


def _phrase(term: str) -> str:
    if term in _PHRASES:
        return _PHRASES[term]
    if term in _KEYWORD_PHRASES:
        return _KEYWORD_PHRASES[term]
    pattern = PARSER.get_terminal(term).pattern if term in _TERMINAL_NAMES else None
    word = getattr(pattern, "value", None)
    return f'"{word}"' if isinstance(word, str) else term.lower()


_TERMINAL_NAMES = {t.name for t in PARSER.terminals}


def _expected(terms: set[str]) -> list[str]:
    """Terminal names → human phrases: condition starts, operators and values
    grouped; then keywords alphabetically, then classes (names, "(", …)."""
    names = set(terms)
    out: list[str] = []
    if "_PERFORMED" in names:
        out.append(_CONDITION_PHRASE)
        names -= _CONDITION_TERMS
    if {"CMP_OP", "_EXISTS"} <= names:
        out.append(_OPERATOR_PHRASE)
        names -= _OPERATOR_TERMS
    if len(names & _VALUE_TERMS) >= 3:
        out.append(_VALUE_PHRASE)
        names -= _VALUE_TERMS
    if "IDENT" in names:
        names.discard("QUOTED_NAME")
    keywords = sorted((_phrase(t) for t in names if t not in _PHRASES), key=str.lower)
    classes = [_PHRASES[t] for t in _PHRASES if t in names]
    return out + keywords + classes


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


_PREV_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`(?:[^`]|``)*`|[A-Za-z0-9_:+.\-]+|!=|<=|>=|[=<>(),.]')


def _previous_token(text: str, pos: int) -> str | None:
    """The last token written before ``pos`` (for "after X" in messages)."""
    last = None
    for m in _PREV_TOKEN.finditer(text, 0, pos):
        last = m.group(0)
    return last


def _syntax_error(text: str, exc: UnexpectedInput) -> FormulaError:
    line, column = exc.line, exc.column
    pos = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
    if isinstance(exc, UnexpectedToken):
        expected = _expected(_acceptable(exc))
        if exc.token.type == "$END":
            found = "the end of the formula"
            pos = len(text)
            line, column = _end_position(text)
        else:
            found = _quoted(str(exc.token))
    elif isinstance(exc, UnexpectedCharacters):
        expected = _expected(_acceptable_before(text, pos) or set(exc.allowed or ()))
        char = text[pos] if pos < len(text) else ""
        if char == '"':
            found = "an unterminated or badly escaped string"
        elif char == "'":
            found = '"\'" (strings use double quotes)'
        else:
            found = f'"{char}"'
    else:  # pragma: no cover - lark raises only the two above for LALR
        expected, found = [], "something unexpected"
    before = _previous_token(text, pos)
    after = f" after {_quoted(before)}" if before else ""
    problem = f"expected {_join(expected)}{after} but found {found}"
    if (
        isinstance(exc, UnexpectedToken)
        and exc.token.type in _TAIL_TERMS
        and _WHERE_WORD.search(text, 0, pos)
    ):
        problem += "; a where clause with and/or needs parentheses: where (a and b)"
    return FormulaError(problem, line, column, expected)


# Tokens that start a performed / aggregate tail; seeing one where the
# formula should end usually means an unparenthesised compound where clause.
_TAIL_TERMS = frozenset({"_WITHIN", "_EVER", "_AT", "EXACTLY", "_BETWEEN", "BEFORE", "AFTER"})
_WHERE_WORD = re.compile(r"\bwhere\b", re.IGNORECASE)


def _quoted(token: str) -> str:
    """A token as shown in messages: string literals keep their own quotes."""
    return token if token.startswith('"') else f'"{token}"'


def _acceptable(exc: UnexpectedToken) -> set[str]:
    """What the parser would really accept here. LALR merges lookaheads, so
    ``exc.expected`` can list tokens valid only in other contexts; asking the
    interactive parser (error path only) gives the exact set."""
    interactive = exc.interactive_parser
    if interactive is not None:
        try:
            accepts: Callable[[], set[str]] = interactive.accepts
            accepted = set(accepts())
        except Exception:  # pragma: no cover - fall back to lark's own list
            accepted = set()
        if accepted:
            return accepted
    return set(exc.expected)


def _acceptable_before(text: str, pos: int) -> set[str]:
    """Exact acceptable terminals after ``text[:pos]`` (which lexes fine,
    since the lexer failed only at ``pos``)."""
    try:
        interactive = PARSER.parse_interactive(text[:pos])
        interactive.exhaust_lexer()
        accepts: Callable[[], set[str]] = interactive.accepts
        return set(accepts())
    except UnexpectedInput:  # pragma: no cover - defensive
        return set()


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1
