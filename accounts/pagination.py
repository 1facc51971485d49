"""Pagination that stays fast on deep pages of large tables.

A plain ``OFFSET`` over the users list joined to profiles and orgs makes PostgreSQL sort every
joined row (100k users: ~115 ms at page 1,500, spilling to disk). The "deferred join" pages over
primary keys first — with only the joins the filters need, so the username index can deliver the
order — and then loads the 50 full rows by id (~40 ms for the same page).

Walking the sort index is a bet that matches are spread along it. A search breaks the bet when
its matches sit together in the sort order ("user5" matches 11,111 users whose usernames all come
after "user4…"): PostgreSQL then tests 44k rows one by one (~190 ms) to fill page 1. With
``sort_matches_up_to=N`` a page of at most N matches is taken from the matches themselves (the
trigram bitmap scan, then a top-N sort of the matches: ~35 ms for the same page), and the same
query counts them, so a search costs one query instead of a count and a page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import F
from django.utils.functional import cached_property


class DeferredJoinPaginator(Paginator):
    """``Paginator`` whose pages select ids first, then the rows (with their ``select_related``).

    ``count``: the number of rows, or a function giving it, when the caller can count them more
    cheaply than ``object_list.count()`` (``selectors.user_list_count``). ``sort_matches_up_to``:
    on PostgreSQL, when there are at most this many rows, take the page from the sorted rows in one
    query that also counts them, instead of walking the sort index (for searches, see the module
    docstring); 0 never does.
    """

    def __init__(self, object_list, per_page, *, count: int | Callable[[], int] | None = None,
                 sort_matches_up_to: int = 0, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self._count_source = count
        self.sort_matches_up_to = sort_matches_up_to

    @cached_property
    def count(self) -> int:
        if self._count_source is None:
            return super().count
        return self._count_source() if callable(self._count_source) else self._count_source

    def get_page(self, number) -> Page:
        page = self._sorted_matches_page(number)
        return page if page is not None else super().get_page(number)

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("pk", flat=True)[bottom:top]) if top > bottom else []
        return self._page_of(ids, number)

    def _page_of(self, ids: list, number: int) -> Page:
        rows = {obj.pk: obj for obj in self.object_list.filter(pk__in=ids).order_by()}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    def _sorted_matches_page(self, number) -> Page | None:
        """Page ``number`` taken from the sorted matches, which it also counts, or ``None`` when
        that does not apply (off, not PostgreSQL, more matches than ``sort_matches_up_to``, a page
        past the end or an odd page number: the plain path then handles it)."""
        qs = self.object_list
        order = qs.query.order_by
        if not (self.sort_matches_up_to and not self.orphans and connections[qs.db].vendor == "postgresql"
                and order and all(isinstance(field, str) for field in order)):
            return None
        number = 1 if number in (None, "") else number
        if isinstance(number, str) and number.isascii() and number.isdigit():  # not "²", "1.0", "-1"
            number = int(number)
        # Past the last page the fast path could hold (or a number too big for SQL): the plain path.
        if not isinstance(number, int) or not 1 <= number <= self.sort_matches_up_to // self.per_page + 1:
            return None
        # SELECT pk, COUNT(*) OVER () FROM (at most N+1 matches, unordered, with their sort keys)
        # ORDER BY the keys. The inner LIMIT also keeps PostgreSQL from merging the subquery back
        # into a walk of the sort index.
        inner = qs.order_by().values("pk", **{f"_k{i}": F(field.lstrip("-")) for i, field in enumerate(order)})
        inner = inner[: self.sort_matches_up_to + 1]
        sql, params = inner.query.get_compiler(qs.db).as_sql()
        order_sql = ", ".join(
            f"m._k{i} {'DESC' if field.startswith('-') else 'ASC'}" for i, field in enumerate(order))
        # Only Django's compiled SQL (values stay parameters) and fixed aliases are interpolated.
        with connections[qs.db].cursor() as cursor:
            cursor.execute(
                f"SELECT m.pk, COUNT(*) OVER () FROM ({sql}) AS m ORDER BY {order_sql} LIMIT %s OFFSET %s",  # noqa: S608
                (*params, self.per_page, (number - 1) * self.per_page))
            rows = cursor.fetchall()
        if not rows or rows[0][1] > self.sort_matches_up_to:
            return None
        self.__dict__["count"] = rows[0][1]  # the cached_property's slot: no COUNT query
        return self._page_of([pk for pk, _ in rows], number)
