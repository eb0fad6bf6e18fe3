"""DataTransforms: normaliser maths, action scaling, reward transforms, checkpoint round trip."""
import io

import numpy as np
import pytest
import torch

from cmrl.data import DatasetConfig, DatasetError, DatasetInfo, DataTransforms, TransitionData

LOW, HIGH = np.array([-1.0, 0.0], np.float32), np.array([3.0, 10.0], np.float32)


def make(observations, returns=(6.0, 15.0, -3.0), low=LOW, high=HIGH) -> TransitionData:
    observations = np.asarray(observations, np.float32)
    n = len(observations)
    info = DatasetInfo(name="toy", source="d4rl", env_id="Pendulum-v1", ref_min_score=None, ref_max_score=None,
                       action_low=low, action_high=high, behaviour_returns=np.asarray(returns, np.float64))
    return TransitionData(
        observations=observations, actions=np.tile([[1.0, 5.0]], (n, 1)).astype(np.float32),
        rewards=np.arange(n, dtype=np.float32), next_observations=observations + 1,
        terminals=np.zeros(n, np.float32), timeouts=np.zeros(n, np.float32), info=info,
    )


DATA = make([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])


def test_observation_normaliser_against_hand_computed_values():
    t = DataTransforms.fit(DATA, DatasetConfig())
    std0 = np.sqrt(((1 - 3) ** 2 + 0 + (5 - 3) ** 2) / 3)  # population std of 1, 3, 5
    np.testing.assert_allclose(t.obs_mean, [3.0, 10.0])
    np.testing.assert_allclose(t.obs_std, [std0, 1e-3])  # the constant feature's std is floored
    np.testing.assert_allclose(t.normalize_obs(np.array([1.0, 10.002])), [-2 / std0, 2.0], rtol=1e-5)
    as_tensor = t.normalize_obs(torch.tensor([[1.0, 10.002]], dtype=torch.float64))
    assert as_tensor.dtype == torch.float64
    np.testing.assert_allclose(as_tensor.numpy(), [[-2 / std0, 2.0]], rtol=1e-5)


def test_normalisation_can_be_switched_off():
    t = DataTransforms.fit(DATA, DatasetConfig(normalize_observations=False))
    np.testing.assert_array_equal(t.normalize_obs(DATA.observations), DATA.observations)


def test_action_scaling_maps_bounds_to_unit_box_and_back():
    t = DataTransforms.fit(DATA, DatasetConfig())
    env_actions = np.array([[-1.0, 0.0], [3.0, 10.0], [1.0, 5.0], [0.0, 7.5], [5.0, -3.0]], np.float32)
    expected = np.array([[-1, -1], [1, 1], [0, 0], [-0.5, 0.5], [1, -1]], np.float32)  # last row: clipped
    np.testing.assert_allclose(t.scale_action(env_actions), expected, atol=1e-6)
    np.testing.assert_allclose(t.scale_action(torch.from_numpy(env_actions)).numpy(), expected, atol=1e-6)
    inside = np.random.default_rng(0).uniform(LOW, HIGH, size=(100, 2)).astype(np.float32)
    np.testing.assert_allclose(t.unscale_action(t.scale_action(inside)), inside, atol=1e-5)
    unit = torch.tensor([[-1.0, 1.0], [0.0, -0.5], [2.0, -3.0]])
    np.testing.assert_allclose(t.unscale_action(unit).numpy(), [[-1, 10], [1, 2.5], [3, 0]], atol=1e-6)


def test_unbounded_actions_cannot_be_scaled():
    data = make([[0.0]], low=np.array([-np.inf, 0], np.float32), high=HIGH)
    with pytest.raises(DatasetError, match="action bounds must be finite with high > low"):
        DataTransforms.fit(data, DatasetConfig())


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (DatasetConfig(), [0.0, 1.0, 2.0]),
        (DatasetConfig(reward_transform="affine", reward_scale=2.0, reward_shift=-1.0), [-1.0, 1.0, 3.0]),
        # IQL: r * 1000 / (max return - min return) with returns 6, 15, -3
        (DatasetConfig(reward_transform="return_range"), [0.0, 1000 / 18, 2000 / 18]),
    ],
)
def test_reward_transforms(cfg, expected):
    t = DataTransforms.fit(DATA, cfg)
    np.testing.assert_allclose(t.transform_reward(DATA.rewards), expected, rtol=1e-6)


def test_return_range_needs_different_episode_returns():
    with pytest.raises(DatasetError, match="return_range needs complete episodes.*1 complete episode"):
        DataTransforms.fit(make([[0.0]], returns=[5.0]), DatasetConfig(reward_transform="return_range"))


def test_apply_transforms_a_copy():
    cfg = DatasetConfig(reward_transform="affine", reward_scale=0.5)
    t = DataTransforms.fit(DATA, cfg)
    out = t.apply(DATA)
    np.testing.assert_allclose(out.observations, t.normalize_obs(DATA.observations))
    np.testing.assert_allclose(out.next_observations, t.normalize_obs(DATA.observations + 1))
    np.testing.assert_allclose(out.actions, np.zeros((3, 2)), atol=1e-6)
    np.testing.assert_allclose(out.rewards, [0.0, 0.5, 1.0])
    assert out.observations.dtype == np.float32 and out.info is DATA.info
    np.testing.assert_array_equal(DATA.observations[:, 0], [1.0, 3.0, 5.0])  # the raw data is untouched
    out.check()


def test_state_dict_round_trip_through_a_torch_checkpoint():
    t = DataTransforms.fit(DATA, DatasetConfig(reward_transform="return_range"))
    buffer = io.BytesIO()
    torch.save(t.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = DataTransforms.from_state_dict(state)
    other = DataTransforms.fit(make([[7.0, 7.0], [8.0, 9.0]]), DatasetConfig())
    other.normalize_obs(torch.zeros(2))  # fills its tensor cache, which loading must invalidate
    other.load_state_dict(state)
    probe = torch.tensor([[2.0, 11.0]])
    for loaded in (restored, other):
        np.testing.assert_array_equal(loaded.obs_std, t.obs_std)
        assert loaded.reward_scale == t.reward_scale and loaded.reward_shift == t.reward_shift
        torch.testing.assert_close(loaded.normalize_obs(probe), t.normalize_obs(probe))
        torch.testing.assert_close(loaded.unscale_action(probe / 20), t.unscale_action(probe / 20))
    with pytest.raises(KeyError, match="missing obs_std"):
        DataTransforms.from_state_dict({k: v for k, v in state.items() if k != "obs_std"})
