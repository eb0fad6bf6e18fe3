"""DatasetConfig.validate: every bad value is refused with a message naming the config key."""
import pytest

from cmrl.data import DatasetConfig
from cmrl.errors import ConfigError


def test_defaults_are_valid():
    DatasetConfig().validate()
    DatasetConfig(source="d4rl", name="hopper-medium-v2", reward_transform="return_range").validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "hdf5"}, r"dataset.source must be one of embedded, minari, d4rl; got 'hdf5'"),
        ({"reward_transform": "scale"},
         r"dataset.reward_transform must be one of none, affine, return_range; got 'scale'"),
        ({"reward_scale": 0.0}, r"dataset.reward_scale must be finite and non-zero; got 0.0"),
        ({"reward_scale": float("nan")}, r"dataset.reward_scale must be finite"),
        ({"reward_shift": float("inf")}, r"dataset.reward_shift must be finite; got inf"),
        ({"name": ""}, r"dataset.name is empty and dataset.path is not set"),
        ({"path": "/some/file.hdf5"}, r"dataset.path is not used with dataset.source=embedded"),
        ({"env_id": ""}, r"dataset.env_id must be a gymnasium environment id or null"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        DatasetConfig(**changes).validate()
