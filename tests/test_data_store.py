"""TransitionStore: batches hold real, consistent rows; sampling is seeded and resumable exactly."""
import io

import numpy as np
import pytest
import torch

from cmrl.data import DatasetInfo, TransitionData, TransitionStore

N = 50


def make() -> TransitionData:
    """Row i: observation (i, -i), action i/100, reward 2i, next observation (i+1, -i-1), terminal every 7th."""
    rows = np.arange(N, dtype=np.float32)
    info = DatasetInfo(name="toy", source="d4rl", env_id="Pendulum-v1", ref_min_score=None, ref_max_score=None,
                       action_low=np.array([-1.0], np.float32), action_high=np.array([1.0], np.float32),
                       behaviour_returns=np.zeros(0))
    return TransitionData(
        observations=np.stack([rows, -rows], 1), actions=rows[:, None] / 100, rewards=2 * rows,
        next_observations=np.stack([rows + 1, -rows - 1], 1), terminals=(rows % 7 == 6).astype(np.float32),
        timeouts=np.zeros(N, np.float32), info=info,
    )


def check_batch(batch, size: int, device: torch.device) -> None:
    assert batch.observations.shape == (size, 2) and batch.next_observations.shape == (size, 2)
    assert batch.actions.shape == (size, 1)
    assert batch.rewards.shape == (size,) and batch.terminals.shape == (size,)
    for tensor in batch:
        assert tensor.dtype == torch.float32 and tensor.device == device
    i = batch.observations[:, 0]  # each field must come from the same row
    torch.testing.assert_close(batch.observations[:, 1], -i)
    torch.testing.assert_close(batch.actions[:, 0], i / 100)
    torch.testing.assert_close(batch.rewards, 2 * i)
    torch.testing.assert_close(batch.next_observations, torch.stack([i + 1, -i - 1], 1))
    torch.testing.assert_close(batch.terminals, (i % 7 == 6).float())
    # the data's next action: row i + 1's within the episode, row i's own at its end (terminals, the last row)
    torch.testing.assert_close(batch.next_actions[:, 0], torch.where((i % 7 == 6) | (i == N - 1), i, i + 1) / 100)
    # G_i = sum_{j=i}^{end} 0.99^(j-i) 2j, the episode ending at the next terminal (rows 6, 13, ...)
    expected = [sum(0.99 ** (j - row) * 2 * j for j in range(row, min(row - row % 7 + 7, N)))
                for row in i.long().tolist()]
    torch.testing.assert_close(batch.returns, torch.tensor(expected), rtol=1e-5, atol=1e-4)


def test_batches_hold_consistent_rows_and_cover_the_data():
    store = TransitionStore(make(), torch.device("cpu"), 0.99)
    assert len(store) == N
    check_batch(store.sample(256), 256, torch.device("cpu"))
    seen = store.sample(5000).observations[:, 0].unique()
    torch.testing.assert_close(seen, torch.arange(N, dtype=torch.float32))


def test_seeded_sampling_is_deterministic():
    a, b = TransitionStore(make(), "cpu", 0.99), TransitionStore(make(), "cpu", 0.99)
    a.seed(3)
    b.seed(3)
    torch.testing.assert_close(a.sample(64).observations, b.sample(64).observations)
    b.seed(4)
    assert not torch.equal(a.sample(64).observations, b.sample(64).observations)


def test_resume_from_state_dict_gives_the_same_next_batches():
    store = TransitionStore(make(), "cpu", 0.99)
    store.seed(11)
    store.sample(32)
    buffer = io.BytesIO()
    torch.save(store.state_dict(), buffer)
    expected = [store.sample(32).observations for _ in range(3)]
    resumed = TransitionStore(make(), "cpu", 0.99)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for batch in expected:
        torch.testing.assert_close(resumed.sample(32).observations, batch)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be positive; got 0"):
        TransitionStore(make(), "cpu", 0.99).sample(0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_store_on_cuda_samples_and_resumes_on_the_device():
    device = torch.device("cuda")
    store = TransitionStore(make(), device, 0.99)
    store.seed(5)
    check_batch(store.sample(128), 128, torch.device("cuda", torch.cuda.current_device()))
    state = store.state_dict()
    expected = store.sample(128).observations
    store.sample(128)
    store.load_state_dict(state)
    torch.testing.assert_close(store.sample(128).observations, expected)
