"""Search for the SQL indexes: ``Condition``s to SQL, over a ``Dialect``.

``compile_query`` turns a ``SearchQuery`` into a ``Plan``: the WHERE clause of the match keys over the
level's join (study ``st``, series ``se``, instance ``i``), in the one order that makes searches idempotent
(PS3.18 §8.3.4.4): newest study first (StudyDate, StudyTime descending, missing ones last), then series
number, instance number (missing ones first), UIDs breaking ties. Hot attributes are indexed columns; any
other attribute kept at a level is matched in that level's JSON through the dialect. ``paging.Pager`` reads
the pages of a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .base import Condition, ItemCondition, SearchQuery
from .records import NUMERIC_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, fold, integer, text

Rows = list[tuple[Any, ...]]
Run = Callable[[str, Sequence[Any]], Rows]  # execute SQL ('?' placeholders) in the search's snapshot


class Dialect(Protocol):
    """What differs between the SQL databases an index runs on, and nothing else."""

    name: str
    stride: int  # rows between the keys a Pager remembers: a request walks at most this many past its key
    shards: int  # rows per counter: writers that run at once update different ones
    lock: str  # appended to a SELECT of rows the transaction will change (" FOR UPDATE" or "")
    key_columns: bool  # whether level rows carry a ``keys`` column of match keys (``records.match_keys``)

    def members(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``expr`` equals one of ``values`` (list membership)."""
        ...

    def wildcard(self, expr: str, patterns: Sequence[str]) -> tuple[str, list[Any]]:
        """``expr`` matches one of the DICOM patterns (``*``, ``?``; every other character literal)."""
        ...

    def order(self, column: str, descending: bool) -> str:
        """An ORDER BY term in which NULL sorts before every value (last when descending)."""
        ...

    def distinct(self, alias: str) -> str | None:
        """An ORDER BY term after a level's UID that tells the planner its index order is a total order."""
        ...

    def unindexed(self, expr: str) -> str:
        """``expr`` in a form the planner will not look up through an index (so it walks the order's index)."""
        ...

    def document(self, alias: str) -> str:
        """The JSON of the attributes of the level row ``alias`` that ``any_value`` and ``items`` read."""
        ...

    def any_value(self, document: str, condition: Condition) -> tuple[str, list[Any]]:
        """Any value of the condition's attribute in ``document`` matches it (PS3.4 C.2.2.3)."""
        ...

    def first_value(self, document: str, tag: str) -> str:
        """The first value of a single-valued attribute of ``document``, as text."""
        ...

    def items(self, document: str, tag: str) -> str:
        """A FROM item over the items of sequence ``tag`` as rows ``item``, whose ``item.value`` is a document."""
        ...


# -- from Conditions to SQL ---------------------------------------------------------------------------

ALIAS: dict[str, str] = {"study": "st", "series": "se", "instance": "i"}
FROM: dict[str, str] = {
    "study": "study st",
    "series": "series se JOIN study st ON st.study_uid = se.study_uid",
    "instance": "instance i JOIN series se ON se.series_uid = i.series_uid JOIN study st ON st.study_uid = se.study_uid",
}
_STUDY_SELECT = "st.study_uid, st.attributes, st.number_of_series, st.number_of_instances"
_SERIES_SELECT = _STUDY_SELECT + ", se.series_uid, se.attributes, se.number_of_instances"
SELECT: dict[str, str] = {
    "study": _STUDY_SELECT,
    "series": _SERIES_SELECT,
    "instance": _SERIES_SELECT + ", i.instance_uid, i.attributes, i.transfer_syntax_uid",
}
_STUDY_ORDER = [("st.study_date", True), ("st.study_time", True), ("st.study_uid", False)]
_SERIES_ORDER = [*_STUDY_ORDER, ("se.series_number", False), ("se.series_uid", False)]
# The order of each level: (column, descending); NULL sorts first ascending, last descending.
ORDER: dict[str, list[tuple[str, bool]]] = {
    "study": _STUDY_ORDER,
    "series": _SERIES_ORDER,
    "instance": [*_SERIES_ORDER, ("i.instance_number", False), ("i.instance_uid", False)],
}
_ORDER_COLUMNS = frozenset({"st.study_date", "st.study_time"})  # a range on them is a range of the order's index
# Attributes kept in columns: tag -> (level, column). Person names point at their folded copy.
COLUMN_FIELDS: dict[str, tuple[str, str]] = {
    "0020000D": ("study", "study_uid"),
    **{tag: ("study", column) for tag, column in STUDY_COLUMNS.items()},
    "00100010": ("study", "patient_name_folded"),
    "00080090": ("study", "referring_physician_name_folded"),
    "0020000E": ("series", "series_uid"),
    **{tag: ("series", column) for tag, column in SERIES_COLUMNS.items()},
    "00080016": ("instance", "sop_class_uid"),
    "00080018": ("instance", "instance_uid"),
    "00200013": ("instance", "instance_number"),
    "00083002": ("instance", "transfer_syntax_uid"),
}
# Study attributes derived from lower levels: matched through the lower level's index, computed for a page.
DERIVED_SOURCE: dict[str, tuple[str, str]] = {
    "00080061": ("series", "modality"),  # ModalitiesInStudy
    "00080062": ("instance", "sop_class_uid"),  # SOPClassesInStudy
}
DERIVED_VR = {"00080061": "CS", "00080062": "UI"}


def derived_values(dialect: Dialect, run: Run, tag: str, study_uids: Sequence[str]) -> dict[str, set[str]]:
    """The values of a derived study attribute for each of the studies."""
    table, column = DERIVED_SOURCE[tag]
    found: dict[str, set[str]] = {}
    for start in range(0, len(study_uids), 500):
        members, args = dialect.members("study_uid", study_uids[start : start + 500])
        # The value's own index would be scanned whole for "IS NOT NULL": look the studies up instead.
        for study_uid, value in run(f"SELECT DISTINCT study_uid, {column} FROM {table} WHERE {members}"
                                    f" AND {dialect.unindexed(column)} IS NOT NULL", args):
            found.setdefault(study_uid, set()).add(value)
    return found


def predicate(dialect: Dialect, expr: str, condition: Condition, kind: str = "text") -> tuple[str, list[Any]]:
    """``expr`` satisfies the condition; ``kind`` is ``text``, ``number`` (an integer column) or ``json``."""
    values = [text(v) if isinstance(v, str) else v for v in condition.values]
    if condition.person_name:
        values = [fold(v) for v in values]
    if condition.kind == "equal":
        if kind == "number":
            values = [n for n in map(integer, values) if n is not None] or [None]
        elif kind == "text":
            values = [str(v) for v in values]
        if len(values) == 1:
            return f"{expr} = ?", values
        return dialect.members(expr, values)
    if condition.kind == "pattern":
        return dialect.wildcard(expr, [str(v) for v in values])
    if condition.kind == "range":
        low, high = values
        parts, args = [], []
        if low:
            parts.append(f"{expr} >= ?")
            args.append(low)
        if high:
            parts.append(f"{expr} <= ?")
            args.append(high)
        return (" AND ".join(parts) or f"{expr} IS NOT NULL"), args
    if condition.kind == "fuzzy":  # a prefix of the whole name, of a component or of a word
        return dialect.wildcard(expr, [p for v in values for p in (f"{v}*", f"*^{v}*", f"* {v}*")])
    raise ValueError(f"unknown condition kind {condition.kind!r}")


def _level_alias(condition: Condition | ItemCondition) -> str:
    if condition.level not in ALIAS:
        raise ValueError(f"condition on {condition.tag} names no level")
    return ALIAS[condition.level]


def check_tag(tag: str) -> str:
    """A tag as it may appear inside SQL text: eight upper-case hexadecimal digits."""
    if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
        raise ValueError(f"not a tag: {tag!r}")
    return tag


def condition_sql(dialect: Dialect, condition: Condition | ItemCondition, level: str,
                  ordered: bool = False) -> tuple[str, list[Any]]:
    """One SQL predicate for a condition on an entity of ``level``.

    ``ordered``: a form that leaves the planner no index of its own to start from but the order's (for a
    condition that many rows satisfy, walking the order and testing each row beats sorting every match).
    """
    def column(expr: str) -> str:
        return dialect.unindexed(expr) if ordered and expr not in _ORDER_COLUMNS else expr

    if isinstance(condition, ItemCondition):
        parts, args = [], []
        for inner in condition.conditions:
            sql, values = dialect.any_value("item.value", inner)
            parts.append(sql)
            args.extend(values)
        items = dialect.items(dialect.document(_level_alias(condition)), check_tag(condition.tag))
        return f"EXISTS (SELECT 1 FROM {items} WHERE {' AND '.join(parts)})", args
    tag = condition.tag
    if tag in DERIVED_SOURCE:
        table, source = DERIVED_SOURCE[tag]
        sql, args = predicate(dialect, f"x.{source}", condition)
        if ordered:  # each study walked is looked up (the column's index holds (value, study_uid))
            return f"EXISTS (SELECT 1 FROM {table} x WHERE {sql} AND x.study_uid = st.study_uid)", args
        # Not correlated: the set of matching studies is built once, from the index on the column.
        return f"st.study_uid IN (SELECT x.study_uid FROM {table} x WHERE {sql})", args
    if tag == "0020000D" and level == "series":  # the same value, on the indexed column of this level
        return predicate(dialect, column("se.study_uid"), condition)
    if tag == "0020000E" and level == "instance":
        return predicate(dialect, column("i.series_uid"), condition)
    if condition.time_tag is not None:  # combined date-time matching (PS3.18 §8.3.4.1.1)
        combined = f"({_scalar(dialect, tag, condition)} || coalesce({_scalar(dialect, condition.time_tag, condition)}, ''))"
        return predicate(dialect, combined, condition)
    if tag in COLUMN_FIELDS:
        field_level, name = COLUMN_FIELDS[tag]
        return predicate(dialect, column(f"{ALIAS[field_level]}.{name}"), condition,
                         "number" if name in NUMERIC_COLUMNS else "text")
    return dialect.any_value(dialect.document(_level_alias(condition)), condition)


def _scalar(dialect: Dialect, tag: str, condition: Condition) -> str:
    """The first value of a single-valued attribute (the date or time of a combined range)."""
    if tag in COLUMN_FIELDS:
        field_level, column = COLUMN_FIELDS[tag]
        return f"{ALIAS[field_level]}.{column}"
    return dialect.first_value(dialect.document(_level_alias(condition)), check_tag(tag))


@dataclass(frozen=True)
class Plan:
    """A search without its paging: the level and the WHERE clause of its match keys (in two forms, one args)."""

    level: str
    where: tuple[str, ...]
    args: tuple[Any, ...]
    ordered: tuple[str, ...] = ()  # the same conditions in condition_sql's ``ordered`` form

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.level, self.where, tuple(tuple(a) if isinstance(a, list) else a for a in self.args))


def compile_query(dialect: Dialect, query: SearchQuery) -> Plan:
    where, ordered, args = [], [], []
    for condition in query.conditions:
        sql, values = condition_sql(dialect, condition, query.level)
        where.append(sql)
        ordered.append(condition_sql(dialect, condition, query.level, ordered=True)[0])
        args.extend(values)
    return Plan(query.level, tuple(where), tuple(args), tuple(ordered))
