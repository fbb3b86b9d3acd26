"""The re-sorting window (pgpager.window): a position once decided never changes as the stream
goes on, the sequence is nearest first, and no row comes out twice."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pgpager.window import WINDOW, needed, windowed

# Streams of (distance, id): distances drawn from few values, so ties (broken by id) are common.
streams = st.lists(st.integers(0, 50), max_size=400).map(
    lambda ds: [(float(d), f"r{i:04d}", f"r{i:04d}") for i, d in enumerate(ds)]
)


@given(streams, st.data())
def test_a_decided_position_never_changes(
    stream: list[tuple[float, str, str]], data: st.DataObject
) -> None:
    decided, held = windowed(stream)
    whole = decided + held  # the sequence of the whole stream, once it has ended
    cut = data.draw(st.integers(0, len(stream)))
    early, _ = windowed(stream[:cut])
    assert whole[: len(early)] == early


@given(streams)
def test_the_sequence_is_nearest_first_and_holds_each_row_once(
    stream: list[tuple[float, str, str]],
) -> None:
    decided, held = windowed(stream)
    sequence = decided + held
    assert len(set(sequence)) == len(sequence)
    assert set(sequence) <= {rid for _, rid, _ in stream}
    keys = {rid: (d, rid) for d, rid, _ in stream}
    assert all(keys[a] < keys[b] for a, b in itertools.pairwise(sequence))


@given(st.integers(1, 3000))
def test_needed_rows_decide_as_many_when_nothing_is_late(n: int) -> None:
    stream = [(float(i), f"r{i:05d}", i) for i in range(needed(n) + 5)]
    decided, _ = windowed(stream[: needed(n)])
    assert decided == list(range(n))
    decided, _ = windowed(stream[: needed(n) - 1])
    assert len(decided) == n - 1


def test_a_row_late_within_the_window_is_put_back_and_a_later_one_left_out() -> None:
    near, far = (
        [(0.5, "near", "near")],
        [(float(i), f"r{i:03d}", f"r{i:03d}") for i in range(1, 200)],
    )
    # One row found WINDOW rows late is put back in its place ...
    decided, held = windowed(far[:WINDOW] + near + far[WINDOW:])
    assert (decided + held)[0] == "near"
    # ... one found after rows were given out for its place is left to the exact tail.
    decided, held = windowed(far[: WINDOW + 5] + near + far[WINDOW + 5 :])
    assert "near" not in decided + held
