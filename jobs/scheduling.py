"""Spreading approved posts over publishing slots.

Slots are `start`, `start + every`, `start + 2·every`, ... Each post takes the first slot
in which its owner has nothing on its platform yet — counting posts already on the
calendar — so one account never publishes twice in the same slot.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select, update

from jobs.models import posts, utcnow
from jobs.posts import APPROVED, HORIZON, MAX_ID, SCHEDULED, PostError, check_time, get_post

SCHEDULABLE = (APPROVED, SCHEDULED)  # a scheduled post given again is moved


def plan_slots(items: list[tuple[int, str, str]], taken: set[tuple[str, str, int]]) -> dict[int, int]:
    """{post id: slot index} for (id, owner, platform) items, avoiding `taken`
    (owner, platform, slot index) places. Items keep their order: earlier ones go first."""
    taken = set(taken)
    plan = {}
    for post_id, owner, platform in items:
        slot = 0
        while (owner, platform, slot) in taken:
            slot += 1
        taken.add((owner, platform, slot))
        plan[post_id] = slot
    return plan


def schedule_posts(db: Engine, owner: str | None, post_ids: list[int], start: dt.datetime,
                   every: dt.timedelta, *, now: dt.datetime | None = None) -> tuple[list[dict], list[dict]]:
    """Schedule the approved posts among `post_ids` (only `owner`'s, unless None); return
    (the scheduled posts, {id, reason} for the others)."""
    now = now or utcnow()
    check_time(start, now, "start")
    if every * len(post_ids) > HORIZON:
        raise PostError("too_far_ahead", "the slots would run past ten years from now: "
                        "fewer hours between posts, or fewer posts", fields={"every_hours": "too long"})
    ids = [i for i in dict.fromkeys(post_ids) if 0 < i <= MAX_ID]
    query = select(posts.c.id, posts.c.owner, posts.c.platform, posts.c.status).where(posts.c.id.in_(ids))
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    with db.begin() as conn:
        found = {r.id: r for r in conn.execute(query)}
        skipped = [{"id": i, "reason": "not_found"} for i in dict.fromkeys(post_ids) if i not in found]
        skipped += [{"id": i, "reason": f"{found[i].status}: approve it first"}
                    for i in ids if i in found and found[i].status not in SCHEDULABLE]
        items = [(i, found[i].owner, found[i].platform) for i in ids
                 if i in found and found[i].status in SCHEDULABLE]
        if not items:
            return [], skipped
        owners = {o for _, o, _ in items}
        # Slots already holding posts of these owners (other than the ones being moved).
        horizon = start + every * len(items)
        existing = conn.execute(
            select(posts.c.owner, posts.c.platform, posts.c.scheduled_at)
            .where(posts.c.owner.in_(owners), posts.c.status == SCHEDULED,
                   posts.c.scheduled_at >= start, posts.c.scheduled_at < horizon,
                   posts.c.id.not_in([i for i, _, _ in items])))
        taken = {(r.owner, r.platform, int((r.scheduled_at - start) / every)) for r in existing}
        plan = plan_slots(items, taken)
        for post_id, slot in plan.items():
            conn.execute(update(posts).where(posts.c.id == post_id)
                         .values(status=SCHEDULED, scheduled_at=start + every * slot, updated_at=now))
    return [get_post(db, i) for i in plan], skipped
