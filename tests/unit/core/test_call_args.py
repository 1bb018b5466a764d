"""``CallArgs`` read by position: the hot loops that do so check ``CALL_ARGS`` at import."""

from __future__ import annotations

import pytest

from tokengov.core.calls import CALL_ARGS, check_call_arg_positions


def test_call_args_name_every_attribute_of_a_call_once() -> None:
    assert len(set(CALL_ARGS)) == len(CALL_ARGS) == 26
    assert CALL_ARGS[:2] == ("event_id", "ts") and CALL_ARGS[-1] == "usage_missing"
    # the positions the hot loops read (Pricer.costs, the sink's encoder and decoders)
    assert {i: CALL_ARGS[i] for i in (8, 9, 10, 19, 21, 24)} == {
        8: "model",
        9: "input",
        10: "output",
        19: "cost_femto",
        21: "provider",
        24: "service_tier",
    }


def test_a_moved_position_fails_naming_the_reader() -> None:
    check_call_arg_positions("a reader", {0: "event_id", 1: "ts", 19: "cost_femto"})
    with pytest.raises(ImportError, match=r"a reader reads CallArgs by position.*\{1: 'model'\}"):
        check_call_arg_positions("a reader", {0: "event_id", 1: "model"})
