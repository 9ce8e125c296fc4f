"""A board that fell behind gets each row's latest state once, not every event in between."""
from __future__ import annotations

from jobs.events import Event
from webapp.fanout import Batches
from webapp.routes.board import _BoardView


class _Rows:
    def __init__(self) -> None:
        self.rendered: list[str] = []

    def get(self, event: Event) -> bytes:
        self.rendered.append(event.id)
        return f"[{event.id}]".encode()


class _Feed:
    def __init__(self) -> None:
        self.rows = _Rows()


def _event(seq: int, task_id: str, owner: str = "ada") -> Event:
    return Event(f"e:1-{seq}", {"kind": "task", "task": {"task_id": task_id, "owner": owner}})


def _view(scope=None) -> _BoardView:
    view = _BoardView.__new__(_BoardView)
    view.feed, view.filters, view.scope = _Feed(), None, scope
    view.variant = "limited" if scope else "full"
    view.batches = Batches()
    return view


def test_a_slow_board_gets_the_latest_state_of_each_row_in_order():
    view = _view()
    items = [_event(1, "a"), _event(2, "b"), _event(3, "a"), _event(4, "c"), _event(5, "a")]
    shown, marker = view.now(items, (0, 5))
    assert shown == b"[e:1-2][e:1-4][e:1-5]"  # b, c, then a's latest: ids keep increasing
    assert marker == b""
    assert view.feed.rows.rendered == ["e:1-2", "e:1-4", "e:1-5"]  # superseded states unrendered
    assert view.now(items, (0, 5)) == (shown, marker)  # another board, same slice: shared
    assert len(view.feed.rows.rendered) == 3


def test_an_author_sees_own_rows_and_moves_past_the_others():
    view = _view(scope="ada")
    items = [_event(1, "a"), _event(2, "x", owner="bob"), _event(3, "a"),
             _event(4, "y", owner="bob")]
    shown, marker = view.now(items, (0, 4))
    assert shown == b"[e:1-3]"
    assert marker == b"id: e:1-4\n\n"


def test_panels_go_only_to_pages_that_show_them():
    from webapp.board_feed import Panels
    items = [_event(1, "a"), Panels({"full": b"[panels]", "limited": b"[mine]"})]
    board = _view()
    assert board.now(items, (0, 2))[0] == b"[e:1-1][panels]"
    rows_only = _view()
    rows_only.variant = None  # /board/stream?health=0
    assert rows_only.now(items, (0, 2))[0] == b"[e:1-1]"
