"""TransitionData.check: empty, mis-shaped, wrongly typed or non-finite data is refused clearly."""
import json
from dataclasses import replace

import numpy as np
import pytest

from cmrl.data import DatasetError, DatasetInfo, TransitionData
from cmrl.errors import UserError


def make(n: int = 5) -> TransitionData:
    rows = np.arange(n, dtype=np.float32)
    info = DatasetInfo(name="toy", source="d4rl", env_id="Pendulum-v1", ref_min_score=None, ref_max_score=None,
                       action_low=np.array([-2.0], np.float32), action_high=np.array([2.0], np.float32),
                       behaviour_returns=np.zeros(0))
    return TransitionData(
        observations=np.stack([rows, -rows], axis=1), actions=rows[:, None] / 10, rewards=rows.copy(),
        next_observations=np.stack([rows + 1, -rows - 1], axis=1), terminals=np.zeros(n, np.float32),
        timeouts=np.zeros(n, np.float32), info=info,
    )


def test_valid_data_passes_and_reports_sizes():
    data = make()
    data.check()
    assert (len(data), data.obs_dim, data.action_dim) == (5, 2, 1)


def test_nan_and_inf_are_counted_by_rows():
    data = make()
    data.observations[1, 0] = np.nan
    data.observations[3] = np.inf
    with pytest.raises(DatasetError, match=r"'toy': 2 of 5 rows of observations hold NaN or inf \(first at row 1\)"):
        data.check()


def test_nan_in_rewards():
    data = make()
    data.rewards[4] = np.nan
    with pytest.raises(DatasetError, match=r"1 of 5 rows of rewards hold NaN or inf \(first at row 4\)"):
        data.check()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("actions", np.zeros((4, 1), np.float32), r"actions has shape \(4, 1\), expected \(N, dim\) with N = 5"),
        ("rewards", np.zeros((5, 1), np.float32), r"rewards has shape \(5, 1\), expected \(N,\)"),
        ("next_observations", np.zeros((5, 3), np.float32), r"next_observations has shape \(5, 3\) but observations"),
        ("terminals", np.full(5, 0.5, np.float32), r"terminals must hold only 0.0 and 1.0"),
        ("observations", np.zeros((5, 2)), r"observations must be a float32 numpy array; got float64"),
    ],
)
def test_bad_fields(field, value, message):
    with pytest.raises(DatasetError, match=message):
        replace(make(), **{field: value}).check()


def test_empty_data():
    with pytest.raises(DatasetError, match="'toy' holds no transitions"):
        make(0).check()


def test_action_bounds_must_match_actions():
    data = make()
    data.info.action_low = np.array([-1.0, -1.0], np.float32)
    with pytest.raises(DatasetError, match=r"info.action_low has shape \(2,\), expected \(1,\)"):
        data.check()


def test_info_as_dict_is_plain_json():
    data = make()
    data.info.behaviour_returns = np.array([1.5, -2.0])
    as_dict = json.loads(json.dumps(data.info.as_dict()))
    assert as_dict == {"name": "toy", "source": "d4rl", "env_id": "Pendulum-v1", "ref_min_score": None,
                       "ref_max_score": None, "action_low": [-2.0], "action_high": [2.0],
                       "behaviour_returns": [1.5, -2.0]}


def test_dataset_errors_are_user_errors():
    assert issubclass(DatasetError, UserError) and issubclass(DatasetError, ValueError)
