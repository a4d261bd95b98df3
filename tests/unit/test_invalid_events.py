"""The pure parts of the invalid-events actions (ops/invalid.py): which events a selection
means, and what a body judged again would become (the dry run's verdicts)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import BadRequest
from ops import actions
from ops.actions import Selection
from ops.invalid import FILTERS, WHAT, params, verdict
from testkit.events import order_event_document
from worker.judge import judged_row

SINCE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "selection",
    [
        Selection(),  # nothing said: never taken as "everything"
        Selection(ids=("a",), everything=True),
        Selection(ids=("a",), event_type="order.paid"),
        Selection(everything=True, since=SINCE),
    ],
)
def test_a_selection_says_exactly_one_thing(selection: Selection) -> None:
    with pytest.raises(BadRequest, match="say which"):
        selection.check(FILTERS)


@pytest.mark.parametrize(
    ("selection", "described"),
    [
        (Selection(everything=True), "all invalid events"),
        (Selection(ids=("a", "b")), "a b"),
        (Selection(ids=tuple(str(i) for i in range(25))), " ".join(map(str, range(20))) + " ..."),
        (
            Selection(event_type="order.paid", since=SINCE),
            "type=order.paid since=2026-11-01T00:00:00+00:00",
        ),
    ],
)
def test_a_selection_describes_itself_for_the_audit_trail(
    selection: Selection, described: str
) -> None:
    selection.check(FILTERS)
    assert selection.describe(WHAT) == described


def test_the_old_replay_flags_mean_every_one_without_a_filter() -> None:
    assert Selection.window(None, None) == Selection(everything=True)
    assert params(Selection.window(SINCE, None)) == {
        "ids": [],
        "event_type": None,
        "since": SINCE,
        "until": None,
    }


def _body(change: str) -> bytes:
    document = order_event_document("order.paid", "ord_v1", livemode=True)
    if change == "missing":
        del document["data"]["object"]["payment_status"]
    elif change == "unhandled":
        document["type"] = "order.updated"
    return orjson.dumps(document)


def test_verdicts_say_what_a_replay_would_make_of_each_body() -> None:
    applied = verdict(judged_row(_body("valid"), None))
    assert (applied.outcome, applied.text) == ("applied", "applied as order.paid for ord_v1")
    still = verdict(judged_row(_body("missing"), None))
    assert (still.outcome, still.text) == (
        "invalid",
        "still invalid: data.object.payment_status: required",
    )
    ignored = verdict(judged_row(_body("unhandled"), None))
    assert (ignored.outcome, ignored.text) == ("ignored", "ignored: no handler for order.updated")
    test_only = verdict(judged_row(_body("valid"), None), modes={False})
    assert test_only.outcome == "other_mode"
    assert test_only.text == "other_mode: live events are not accepted here"


@given(st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_an_action_result_counts_everything_and_lists_a_bounded_sample(pages: list[int]) -> None:
    result = actions.ActionResult("replay", False)
    for size in pages:
        keys = [f"k{result.done_count + i}" for i in range(size)]
        for key in keys:
            result.add_matched({"event_id": key})
        result.add_done(keys)
    assert result.matched_count == result.done_count == sum(pages)
    assert len(result.matched) == min(sum(pages), actions.KEPT)
    assert result.done == [f"k{i}" for i in range(min(sum(pages), actions.KEPT_IDS))]
