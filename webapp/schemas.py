"""Request bodies of the JSON API, validated by quart-schema (and documented in OpenAPI)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt,
                      StringConstraints, field_validator, model_validator)

from jobs.models import MAX_ID, STATUSES
from jobs.queries import ACTIVE_LIMIT, ACTIVE_LIMIT_MAX
from jobs.platforms import PLATFORMS
from jobs.task_types import NAMES as TYPE_NAMES

PlatformName = Literal[tuple(PLATFORMS)]  # the platforms the writers know, in their order
UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=300)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


def _web_link(value: str) -> str:
    """A link readers may follow from a post: http or https to a host, nothing else
    (`javascript:`, `data:` and the like would run or hide content where posts are shown)."""
    if not value:
        return value
    parts = urlsplit(value)
    if (parts.scheme.lower() not in ("http", "https") or not parts.hostname
            or any(c.isspace() or not c.isprintable() for c in value)):
        raise ValueError("a link must be a web address starting with http:// or https://")
    return value


WebLink = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000),
                    AfterValidator(_web_link)]


class BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    author: ShortText = ""
    genre: ShortText = ""
    blurb: Annotated[str, StringConstraints(max_length=5000)] = ""
    audience: ShortText = ""
    keywords: list[ShortText] = Field(default_factory=list, max_length=30)
    link: WebLink = ""
    launch_date: dt.date | None = None
    comparables: list[ShortText] = Field(default_factory=list, max_length=20)
    tone: Literal["warm", "punchy", "professional", "playful"] = "warm"


class GenerationParams(BaseModel):
    """A generation's own parameters: what a batch entry takes, and what POST
    /api/generate-posts takes besides whose and how (GeneratePosts)."""
    model_config = ConfigDict(extra="forbid")
    platforms: list[PlatformName] = Field(min_length=1, max_length=8)
    count_per_platform: StrictInt = Field(1, ge=1, le=50)
    book_id: Id | None = None
    book: BookIn | None = None  # a one-off book, not stored
    seed: StrictInt | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("platforms")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class GeneratePosts(GenerationParams):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    user_id: UserId | None = None  # default: the signed-in user
    async_: StrictBool = Field(False, alias="async")
    # When the queued task ends, its record is POSTed here, signed (see README, webhooks).
    callback_url: Annotated[str, StringConstraints(max_length=2000)] | None = None


class BookCreate(BookIn):
    user_id: UserId | None = None


class Revoke(BaseModel):
    terminate: StrictBool = False


class ApprovePosts(BaseModel):
    """The seed's `post_ids`, or `task_id`: every draft of the plan that task wrote (a
    launch campaign's), approved in one go."""
    user_id: UserId | None = None
    post_ids: list[Id] | None = Field(None, min_length=1, max_length=500)
    task_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> "ApprovePosts":
        if (self.post_ids is None) == (self.task_id is None):
            raise ValueError("send either post_ids or task_id (a campaign's task)")
        return self


class Owner(BaseModel):
    user_id: UserId | None = None


class TaskQuery(BaseModel):
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    type: Literal[TYPE_NAMES] | None = None  # type: ignore[valid-type]
    owner: str | None = None
    q: Annotated[str, StringConstraints(max_length=64)] | None = None
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=200)
    # Keyset paging: the `older`/`newer` cursor of the previous answer (at most one).
    before: Annotated[str, StringConstraints(max_length=100)] | None = None
    after: Annotated[str, StringConstraints(max_length=100)] | None = None

    @field_validator("status", "type", "owner", "before", "after", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value  # `status=` or `after=` left blank: no filter


class ActiveQuery(BaseModel):
    limit: int = Field(ACTIVE_LIMIT, ge=1, le=ACTIVE_LIMIT_MAX)


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    type: Literal[TYPE_NAMES] | None = None  # type: ignore[valid-type]
    owner: UserId | None = None
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None


class BulkAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["revoke", "retry"]
    filter: BulkFilter  # required: `{}` (every task) is said, never assumed
    dry_run: StrictBool = False
    terminate: StrictBool = False  # revoke: stop running tasks within seconds even if stuck


class QueueTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[TYPE_NAMES] | None = None  # type: ignore[valid-type]  # None: every type


# -- POST /api/tasks/batch: up to 1,000 tasks in one request, each validated by its type --
class StatusCheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PostApprovalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    post_ids: list[Id] = Field(min_length=1, max_length=500)


class BatchStatusCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["status_check"]
    params: StatusCheckParams = Field(default_factory=StatusCheckParams)


class BatchPostApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["post_approval"]
    params: PostApprovalParams


class BatchGeneration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["content_generation"]
    params: GenerationParams


BATCH_MAX = 1000


class BatchTasks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: UserId | None = None  # whose tasks (managers may name another user)
    tasks: list[Annotated[BatchStatusCheck | BatchPostApproval | BatchGeneration,
                          Field(discriminator="type")]] = Field(min_length=1, max_length=BATCH_MAX)
