"""``CallArgs`` read by position: the hot loops that do so check ``CALL_ARGS`` at import."""

from __future__ import annotations

import inspect

import pytest

from tokengov.core.calls import CALL_ARGS, Call, check_call_arg_positions


def test_call_args_are_the_constructors_parameters_in_order() -> None:
    parameters = list(inspect.signature(Call.__init__).parameters)[1:]
    assert tuple(parameters) == CALL_ARGS


def test_a_moved_position_fails_naming_the_reader() -> None:
    check_call_arg_positions("a reader", {0: "event_id", 1: "ts", 19: "cost_femto"})
    with pytest.raises(ImportError, match=r"a reader reads CallArgs by position.*\{1: 'model'\}"):
        check_call_arg_positions("a reader", {0: "event_id", 1: "model"})
