"""Pure logic of the console's admin pages: the hourly chart's bars, time fields, the group tree order."""
from __future__ import annotations

import pytest

from console.admin_support import tree_order
from console.pages.home import CHART_H, CHART_TOP, hourly_bars
from console.times import parse_utc, utc_text
from oss.storage.dashboard import HOUR_MS


def test_hourly_bars_end_with_the_current_hour_and_scale_to_the_busiest():
    now = 1_764_770_400_000 + 25 * 60_000  # 14:25 UTC
    current = (now // HOUR_MS) * HOUR_MS
    bars = hourly_bars({current: 4, current - HOUR_MS: 2, current - 30 * HOUR_MS: 99}, now)
    assert len(bars) == 24 and bars[-1].start_ms == current and bars[0].start_ms == current - 23 * HOUR_MS
    assert [b.count for b in bars[-2:]] == [2, 4] and sum(b.count for b in bars) == 6  # older hours left out
    assert bars[-1].height == CHART_H - CHART_TOP and bars[-2].height == (CHART_H - CHART_TOP) / 2
    assert bars[0].height == 0 and bars[0].y == CHART_H
    assert all(b.x < c.x for b, c in zip(bars, bars[1:], strict=False))


def test_no_message_draws_flat_bars():
    assert all(b.height == 0 for b in hourly_bars({}, 1_764_770_400_000))


@pytest.mark.parametrize("text, expected", [
    ("2026-12-03T14:05", 1_796_306_700_000), ("2026-12-03 14:05", 1_796_306_700_000),
    ("2026-12-03 14:05:09", 1_796_306_709_000), ("2026-12-03", 1_796_256_000_000), ("  ", None)])
def test_time_fields_are_read_as_utc(text, expected):
    assert parse_utc(text) == expected
    if expected is not None:
        assert parse_utc(utc_text(expected).removesuffix(" UTC")) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "03/12/2026", "2026-12-03T25:00"])
def test_a_time_field_that_is_not_a_time_says_what_to_write(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM"):
        parse_utc(text)


def test_the_group_tree_is_depth_first_by_name_from_the_root_only():
    groups = [{"id": "r", "name": "Root", "parentId": None}, {"id": "b", "name": "beta", "parentId": "r"},
              {"id": "a", "name": "Alpha", "parentId": "r"}, {"id": "a1", "name": "A one", "parentId": "a"},
              {"id": "x", "name": "Elsewhere", "parentId": "other"}]
    tree = tree_order(groups, "r")
    assert [(g.id, g.depth) for g in tree] == [("r", 0), ("a", 1), ("a1", 2), ("b", 1)]
    assert tree[2].label == "\u2003\u2003A one"
    assert tree_order(groups, "missing") == []


def test_a_group_may_move_anywhere_but_under_itself_or_below_itself():
    from console.pages.groups import move_targets
    groups = [{"id": "r", "name": "Root", "parentId": None}, {"id": "a", "name": "A", "parentId": "r"},
              {"id": "a1", "name": "A1", "parentId": "a"}, {"id": "a11", "name": "A11", "parentId": "a1"},
              {"id": "b", "name": "B", "parentId": "r"}]
    tree = tree_order(groups, "r")
    assert [g.id for g in move_targets(tree, "a")] == ["r", "b"]
    assert [g.id for g in move_targets(tree, "a11")] == ["r", "a", "a1", "b"]
