"""Requests and answers of the posts, calendar and campaign API (validated by quart-schema
and documented in the OpenAPI document)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from jobs.models import MAX_ID
from webapp.schemas import PlatformName

PostState = Literal["draft", "approved", "rejected", "scheduled", "published"]


class Error(BaseModel):
    error: str
    message: str


class PostQuery(BaseModel):
    status: PostState | None = None
    platform: PlatformName | None = None
    book_id: int | None = Field(None, ge=1, le=MAX_ID)
    owner: Annotated[str, StringConstraints(max_length=200)] | None = None  # managers
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(100, ge=1, le=500)


class Post(BaseModel):
    id: int
    platform: str
    text: str
    length: int
    limit: int
    status: PostState
    owner: str
    book_id: int | None
    book_title: str | None
    link: str
    created_at: str
    label: str | None
    scheduled_at: str | None
    published_at: str | None


class PostList(BaseModel):
    posts: list[Post]
    total: int
    page: int
    per_page: int


class PostChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=70_000)] | None = None
    status: PostState | None = None
    scheduled_at: AwareDatetime | None = None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post_ids: list[StrictInt] = Field(min_length=1, max_length=500)
    start: AwareDatetime
    every_hours: float = Field(24, gt=0, le=24 * 31)


class ScheduleAnswer(BaseModel):
    scheduled: list[Post]
    not_scheduled: list[dict]


class CalendarQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    owner: Annotated[str, StringConstraints(max_length=200)] | None = None


class CalendarAnswer(BaseModel):
    posts: list[Post]
    count: int


class ExportQuery(BaseModel):
    format: Literal["csv", "hootsuite"] = "csv"
    platform: PlatformName | None = None  # required by format=hootsuite
    status: PostState = "scheduled"
    owner: Annotated[str, StringConstraints(max_length=200)] | None = None  # managers
    tz: Annotated[str, StringConstraints(max_length=64)] = "UTC"  # of Hootsuite's dates


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platforms: list[PlatformName] = Field(min_length=1, max_length=8)
    launch_date: dt.date | None = None  # default: the book's
    tz: Annotated[str, StringConstraints(max_length=64)] = "UTC"  # posts go out at 10:00 here


class Queued(BaseModel):
    status: str
    task_id: str
    timestamp: str
