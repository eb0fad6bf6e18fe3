"""Returns-to-go of the data: episode ends from terminals, time limits and discontinuities, by hand."""
import numpy as np
import pytest

from cmrl.data import DatasetInfo, TransitionData, episode_ends, n_step_transitions, returns_to_go


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


def test_n_step_transitions_stop_at_episode_ends_by_hand():
    # episode 1: rows 0-3 ending in a terminal; episode 2: rows 4-6 cut by the time limit; 3: rows 7-9
    d = data([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], terminals=[0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
             timeouts=[0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    g = 0.5
    out = n_step_transitions(d, g, 3)
    # row 0: 1 + g 2 + g^2 3, bootstrapped from row 2's next observation (3) with g^3
    # row 1: 2 + g 3 + g^2 4 ends at row 3's terminal: no bootstrap
    # row 5: 6 + g 7 stops at the time-limit cut (row 6), bootstrapped from 7 with g^2
    assert out.rewards.tolist() == pytest.approx([2.75, 4.5, 5, 4, 9.75, 9.5, 7, 15, 14, 10])
    assert out.next_observations[:, 0].tolist() == [3, 4, 4, 4, 7, 7, 7, 10, 10, 10]
    assert out.terminals.tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert out.discounts.tolist() == pytest.approx([g ** 3, g ** 3, g ** 2, g, g ** 3, g ** 2, g, g ** 3, g ** 2, g])
    for field in out:
        assert field.dtype == np.float32


def test_n_step_transitions_stop_where_the_next_row_does_not_continue():
    d = data([1, 2, 3, 4], terminals=[0, 0, 0, 0], timeouts=[0, 0, 0, 0], next_continues=[True, False, True, True])
    out = n_step_transitions(d, 1.0, 4)  # rows 0-1 and 2-3 are two episodes (row 1's next is not row 2)
    assert out.rewards.tolist() == pytest.approx([3, 2, 7, 4])
    assert out.next_observations[:, 0].tolist() == [-1, -1, 4, 4]


def test_one_step_transitions_are_the_data_itself():
    d = data([1, 2, 3], terminals=[0, 1, 0], timeouts=[0, 0, 0])
    out = n_step_transitions(d, 0.9, 1)
    np.testing.assert_array_equal(out.rewards, d.rewards)
    np.testing.assert_array_equal(out.next_observations, d.next_observations)
    np.testing.assert_array_equal(out.terminals, d.terminals)
    assert out.discounts.tolist() == pytest.approx([0.9, 0.9, 0.9])


def test_n_step_rejects_bad_arguments():
    d = data([1, 2], terminals=[0, 0], timeouts=[0, 0])
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        n_step_transitions(d, 0.9, 0)
    with pytest.raises(ValueError, match="discount must be in"):
        n_step_transitions(d, 1.5, 2)
