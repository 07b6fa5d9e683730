"""Pagination of the list endpoints: the query parameters and their documented problems.

The cursor codec and the keyset helpers are :mod:`service.store.pagination` (re-exported
here), shared with the service functions that page (campaigns, dispatches, recipients): one
cursor shape, and a cursor this API did not issue is a 422 problem naming ``cursor``.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from service.api.problems import problem_doc
from service.store.pagination import (
    InvalidCursor,
    KeyValue,
    decode_cursor,
    encode_cursor,
    keyset_after,
    page_of,
    paginate_sorted,
)

__all__ = [
    "Page",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "LimitQuery",
    "CursorQuery",
    "PAGINATION_RESPONSES",
    "InvalidCursor",
    "KeyValue",
    "encode_cursor",
    "decode_cursor",
    "keyset_after",
    "page_of",
    "paginate_sorted",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1–1000)")]
CursorQuery = Annotated[str | None, Query(
    max_length=1024, description="`next_cursor` of the previous page (opaque)")]

#: Extra documented responses of paginated operations (a cursor this API did not issue).
PAGINATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid query (a cursor this API did not return, a limit out of range)",
                     422),
}


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a cursor-paginated list. Each list endpoint's response model subclasses it
    (``class CampaignList(Page[CampaignSummary])``), so its schema keeps its own name and
    example while every list answers the same two fields."""

    items: list[ItemT]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
