"""Returns-to-go of the data: episode ends from terminals, time limits and discontinuities, by hand."""
import numpy as np
import pytest

from cmrl.data import DatasetInfo, TransitionData, episode_ends, returns_to_go


def data(rewards, terminals, timeouts, next_continues=None) -> TransitionData:
    """Rows whose observation is (row,); next observation (row + 1,) unless next_continues says no."""
    n = len(rewards)
    rows = np.arange(n, dtype=np.float32)
    nxt = rows + 1
    if next_continues is not None:
        nxt = np.where(next_continues, nxt, -1.0).astype(np.float32)
    info = DatasetInfo(name="toy", source="d4rl", env_id="Pendulum-v1", ref_min_score=None, ref_max_score=None,
                       action_low=np.array([-1.0], np.float32), action_high=np.array([1.0], np.float32),
                       behaviour_returns=np.zeros(0))
    return TransitionData(rows[:, None], np.zeros((n, 1), np.float32), np.asarray(rewards, np.float32),
                          nxt[:, None], np.asarray(terminals, np.float32), np.asarray(timeouts, np.float32), info)


def test_returns_restart_after_terminals_and_time_limits():
    # episode 1: rows 0-2 ending in a terminal; episode 2: rows 3-4 cut by the time limit; episode 3: row 5
    d = data([1, 2, 3, 4, 5, 6], terminals=[0, 0, 1, 0, 0, 0], timeouts=[0, 0, 0, 0, 1, 0])
    assert episode_ends(d).tolist() == [False, False, True, False, True, True]
    g = 0.5
    expected = [1 + g * 2 + g * g * 3, 2 + g * 3, 3, 4 + g * 5, 5, 6]  # [2.75, 3.5, 3, 6.5, 5, 6]
    assert returns_to_go(d, g).tolist() == pytest.approx(expected)
    assert returns_to_go(d, 1.0).tolist() == pytest.approx([6, 5, 3, 9, 5, 6])
    assert returns_to_go(d, 0.0).tolist() == pytest.approx([1, 2, 3, 4, 5, 6])


def test_an_unmarked_cut_is_found_from_the_observations():
    # no flags at all, but row 1's next observation is not row 2's observation: two episodes
    d = data([1, 1, 1, 1], terminals=[0, 0, 0, 0], timeouts=[0, 0, 0, 0], next_continues=[True, False, True, True])
    assert episode_ends(d).tolist() == [False, True, False, True]
    assert returns_to_go(d, 0.9).tolist() == pytest.approx([1.9, 1.0, 1.9, 1.0])


def test_discount_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match="discount"):
        returns_to_go(data([1.0], [1], [0]), 1.5)
