"""Pages of a search at any offset, for the SQL indexes: ``offset`` and ``limit`` as PS3.18 §8.3.4.4 defines them.

Every page is read *after a key* (the order's columns of one row) through indexes that hold the order, so no
request sorts or counts the whole result; an offset is reached from the nearest remembered key at or before it
(keyset continuation behind the offset). Keys are remembered every ``stride`` rows and at the end of each page
served, per query and per state of the index: the index's change counter is read in the same snapshot as the
rows, so a key is only used while the rows before it are the ones it was found behind. Only the first request
that goes deeper than any before it walks (one query per ``stride`` rows, inside the database); a deep offset
into all instances starts instead from a study near it, found from the studies' kept counts. ``total`` comes
from the index's counters (no condition) or from one count per query and state, which also tells, for each
statement, which form of the plan to run: walking the order (a condition many rows satisfy) or the conditions'
own indexes and a sort of their matches (a narrow one).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .sqlsearch import _STUDY_ORDER, FROM, ORDER, SELECT, Dialect, Plan, Rows, Run

Key = tuple[Any, ...]  # the values of ORDER[level] of one row
_ALL = 1 << 62  # LIMIT of "no limit", which both databases take


def after(columns: Sequence[tuple[str, bool]], key: Key | None) -> list[tuple[list[str], list[Any]]]:
    """The rows after ``key`` as conjunctive parts, in the order's order (their union, in turn, is the rest).

    Rows sharing the longest prefix with the key come first; NULL sorts lowest, so it is first ascending
    and last descending. Each part is a range of an index that holds the order.
    """
    if key is None:
        return [([], [])]
    columns = columns[: len(key)]  # a study's key alone: the rows of the studies after it
    parts: list[tuple[list[str], list[Any]]] = []
    for depth in reversed(range(len(columns))):
        prefix, args = [], []
        for (column, _), value in zip(columns[:depth], key[:depth], strict=True):
            if value is None:
                prefix.append(f"{column} IS NULL")
            else:
                prefix.append(f"{column} = ?")
                args.append(value)
        column, descending = columns[depth]
        value = key[depth]
        if not descending:
            beyond = [(f"{column} IS NOT NULL", [])] if value is None else [(f"{column} > ?", [value])]
        else:
            beyond = [] if value is None else [(f"{column} < ?", [value]), (f"{column} IS NULL", [])]
        parts.extend(([*prefix, sql], [*args, *values]) for sql, values in beyond)
    return parts


@dataclass
class _Marks:
    """What one query at one state of the index is known to hold: keys behind offsets, its total."""

    generation: int
    strided: list[Key] = field(default_factory=list)  # strided[j]: the key of row (j + 1) * stride - 1
    recent: OrderedDict[int, Key] = field(default_factory=OrderedDict)  # offset -> key of the row before it
    total: int | None = None
    # All instances: where every STUDY_STEP-th study starts, and the key of the study before it (Pager._jump).
    study_starts: list[int] | None = None
    study_keys: list[Key | None] = field(default_factory=list)

    def size(self) -> int:
        return len(self.strided) + len(self.recent) + len(self.study_keys) + 1


@dataclass
class Page:
    rows: Rows  # SELECT[level] then the key columns
    total: int


class Pager:
    """Pages of a plan at any offset, through keys remembered behind offsets (see the module docstring)."""

    RECENT = 32  # page ends kept per query: clients paging forward, several at once

    def __init__(self, dialect: Dialect, stride: int = 1000, budget: int = 40_000) -> None:
        self.dialect = dialect
        self.stride = stride
        self.budget = budget  # keys kept in all, over every query (a key is a few hundred bytes)
        self._marks: OrderedDict[tuple[Any, ...], _Marks] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, run: Run, plan: Plan, offset: int, limit: int | None, generation: int, size: int) -> Page:
        """Rows ``offset`` to ``offset + limit`` of the plan; ``size``: how many entities the level holds."""
        columns = ORDER[plan.level]
        counted = self._count(run, plan, generation) if plan.where else size
        if offset >= counted:
            return Page([], self._total(plan, generation, counted))

        def form(window: int) -> Plan:
            """Walking the order and testing each row costs about window * size / matches rows; starting from
            the conditions' own indexes costs a sort of every match. The count (kept per state) tells which."""
            return Plan(plan.level, plan.ordered, plan.args) if counted * counted > window * size else plan

        start, key = self._nearest(plan, generation, offset)
        if not plan.where and plan.level == "instance" and offset - start >= self.stride:
            jumped, study_key = self._jump(run, plan, generation, offset)
            if jumped > start:
                start, key = jumped, study_key
        while offset - start >= self.stride:  # walk forward, a stride at a time, remembering keys
            found = self._nth_after(run, form(self.stride), key, self.stride)
            if found is None:  # cannot be: offset < counted, read in the same snapshot
                raise RuntimeError(f"the index holds fewer than {counted} matches")
            start, key = start + self.stride, found
            self._remember(plan, generation, start, key, strided=True)
        rows = self._take(run, form(offset - start + (limit or counted)), key, offset - start, limit)
        if rows:
            self._remember(plan, generation, offset + len(rows), tuple(rows[-1][-len(columns):]), strided=False)
        return Page(rows, counted)

    # -- reading after a key --------------------------------------------------------------------

    def _sql(self, plan: Plan, part: list[str], select: str, suffix: str = "") -> str:
        where = " AND ".join([*plan.where, *part])
        terms = []
        for column, descending in ORDER[plan.level]:
            if column.endswith("_uid"):  # never NULL: as the indexes hold it
                terms.append(column)
                if distinct := self.dialect.distinct(column.split(".")[0]):
                    terms.append(distinct)
            else:
                terms.append(self.dialect.order(column, descending))
        return (f"SELECT {select} FROM {FROM[plan.level]}{' WHERE ' + where if where else ''}"
                f" ORDER BY {', '.join(terms)}{suffix}")

    def _count_part(self, run: Run, plan: Plan, part: list[str], args: list[Any], cap: int) -> int:
        """How many rows the part holds, counting no further than ``cap``."""
        where = " AND ".join([*plan.where, *part])
        inner = f"SELECT 1 FROM {FROM[plan.level]}{' WHERE ' + where if where else ''} LIMIT ?"
        return int(run(f"SELECT count(*) FROM ({inner}) AS capped", [*plan.args, *args, cap])[0][0])

    def _take(self, run: Run, plan: Plan, key: Key | None, skip: int, want: int | None) -> Rows:
        """Up to ``want`` rows after ``key`` once ``skip`` are passed.

        The order's columns are read first (narrow rows, from the indexes), then the page's rows by UID: no
        attributes are read for the rows passed over. Each part is read at its offset first; only a part that
        turns out to end before it is counted.
        """
        found: Rows = []
        columns = ORDER[plan.level]
        keys = ", ".join(c for c, _ in columns)
        for part, args in after(columns, key):
            need = _ALL if want is None else want - len(found)
            rows = run(self._sql(plan, part, keys, " LIMIT ? OFFSET ?"), [*plan.args, *args, need, skip])
            if not rows and skip:
                skip -= self._count_part(run, plan, part, args, skip)
                continue
            found += rows
            skip = 0
            if want is not None and len(found) >= want:
                break
        return self._rows(run, plan.level, found)

    def _rows(self, run: Run, level: str, keys: Rows) -> Rows:
        """The rows of SELECT[level] (then the order's columns) of the entities whose keys are given, in order."""
        uid = ORDER[level][-1][0]
        by_uid: dict[str, tuple[Any, ...]] = {}
        names = ", ".join(c for c, _ in ORDER[level])
        for start in range(0, len(keys), 500):
            members, args = self.dialect.members(uid, [k[-1] for k in keys[start : start + 500]])
            for row in run(f"SELECT {SELECT[level]}, {names} FROM {FROM[level]} WHERE {members}", args):
                by_uid[row[-1]] = row
        return [by_uid[k[-1]] for k in keys if k[-1] in by_uid]

    def _nth_after(self, run: Run, plan: Plan, key: Key | None, n: int) -> Key | None:
        """The key of the ``n``-th row after ``key`` (None past the end)."""
        keys = ", ".join(c for c, _ in ORDER[plan.level])
        for part, args in after(ORDER[plan.level], key):
            found = run(self._sql(plan, part, keys, " LIMIT 1 OFFSET ?"), [*plan.args, *args, n - 1])
            if found:
                return tuple(found[0])
            n -= self._count_part(run, plan, part, args, n)
        return None

    STUDY_STEP = 8  # studies between two starts kept by _jump: at most that many studies' rows are passed over

    def _jump(self, run: Run, plan: Plan, generation: int, offset: int) -> tuple[int, Key | None]:
        """Where a study near (at or before) instance ``offset`` of all instances starts: (its row, the key before).

        The studies' kept counts add up along the study order, in one pass over the study rows per state of the
        index (no instance row is read); every ``STUDY_STEP``-th study's start is kept, with the key of the study
        before it (a key of the study's columns alone: ``after`` it are the rows of the studies that follow).
        """
        with self._lock:
            marks = self._entry(plan, generation)
            starts, keys = marks.study_starts, marks.study_keys
        if starts is None:
            order = ", ".join([*(self.dialect.order(c, d) for c, d in _STUDY_ORDER[:2]), "st.study_uid",
                               *filter(None, [self.dialect.distinct("st")])])
            rows = run("SELECT before, d, t, u FROM (SELECT sum(st.number_of_instances) OVER w"
                       " - st.number_of_instances AS before, lag(st.study_date) OVER w AS d,"
                       " lag(st.study_time) OVER w AS t, lag(st.study_uid) OVER w AS u, row_number() OVER w AS r"
                       f" FROM study st WINDOW w AS (ORDER BY {order} ROWS UNBOUNDED PRECEDING)) AS w"
                       f" WHERE r % {self.STUDY_STEP} = 1 ORDER BY before", [])
            starts = [int(row[0]) for row in rows]
            keys = [None if row[3] is None else tuple(row[1:]) for row in rows]
            with self._lock:
                marks = self._entry(plan, generation)
                marks.study_starts, marks.study_keys = starts, keys
                self._trim()
        j = bisect.bisect_right(starts, offset) - 1
        return (starts[j], keys[j]) if j >= 0 else (0, None)

    def _count(self, run: Run, plan: Plan, generation: int) -> int:
        with self._lock:
            marks = self._marks.get(plan.signature)
            if marks is not None and marks.generation == generation and marks.total is not None:
                return marks.total
        where = " WHERE " + " AND ".join(plan.where) if plan.where else ""
        total = int(run(f"SELECT count(*) FROM {FROM[plan.level]}{where}", plan.args)[0][0])
        return self._total(plan, generation, total)

    # -- the keys remembered ---------------------------------------------------------------------

    def _entry(self, plan: Plan, generation: int) -> _Marks:
        marks = self._marks.get(plan.signature)
        if marks is None or marks.generation != generation:
            marks = self._marks[plan.signature] = _Marks(generation)
        self._marks.move_to_end(plan.signature)
        return marks

    def _nearest(self, plan: Plan, generation: int, offset: int) -> tuple[int, Key | None]:
        """The remembered (offset, key) nearest at or before ``offset``; (0, None) is the start."""
        with self._lock:
            marks = self._marks.get(plan.signature)
            if marks is None or marks.generation != generation:
                return 0, None
            j = min(offset // self.stride, len(marks.strided))
            start, key = (j * self.stride, marks.strided[j - 1]) if j else (0, None)
            recent = [o for o in marks.recent if start < o <= offset]
            if recent:
                start = max(recent)
                key = marks.recent[start]
                marks.recent.move_to_end(start)
            return start, key

    def _remember(self, plan: Plan, generation: int, offset: int, key: Key, strided: bool) -> None:
        with self._lock:
            marks = self._entry(plan, generation)
            if offset == (len(marks.strided) + 1) * self.stride:
                marks.strided.append(key)
            elif not strided:
                marks.recent[offset] = key
                marks.recent.move_to_end(offset)
                while len(marks.recent) > self.RECENT:
                    marks.recent.popitem(last=False)
            self._trim()

    def _total(self, plan: Plan, generation: int, total: int) -> int:
        with self._lock:
            self._entry(plan, generation).total = total
            self._trim()
        return total

    def _trim(self) -> None:
        """Forget the least recently used queries while more keys than the budget are kept."""
        kept = sum(m.size() for m in self._marks.values())
        while kept > self.budget and len(self._marks) > 1:
            _, marks = self._marks.popitem(last=False)
            kept -= marks.size()
