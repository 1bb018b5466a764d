import random

import pytest

from tokengov.sinks.clickhouse.backoff import Backoff


def test_grows_exponentially_up_to_the_cap():
    backoff = Backoff(initial_s=0.5, max_s=4.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_stays_within_bounds_and_the_cap():
    backoff = Backoff(initial_s=1.0, max_s=2.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.75 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0}, {"initial_s": 5, "max_s": 1}, {"factor": 0.5}, {"jitter": 1.0}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
