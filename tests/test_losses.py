import torch

from bioleaf.model.losses import count_cross_entropy, predict, spike_count_error, target_counts


def test_targets_and_spiking_error():
    y = target_counts(torch.tensor([2, 0]), 3, high=10, low=1)
    assert y.tolist() == [[1, 1, 10], [10, 1, 1]]
    o = torch.tensor([[1.0, 1, 8], [10, 3, 1]])
    assert float(spike_count_error(o, y)) == (0.5 * 4 + 0.5 * 4) / 2


def test_prediction_most_spikes_then_highest_potential_then_lowest_index():
    counts = torch.tensor([[3.0, 5, 5], [2, 2, 1], [4, 4, 4]])
    v = torch.tensor([[0.9, 0.1, 0.5], [-0.2, 0.7, 0.9], [0.3, 0.3, 0.3]])
    assert predict(counts, v).tolist() == [2, 1, 0]


def test_count_cross_entropy_prefers_the_label():
    labels = torch.tensor([1])
    good, bad = torch.tensor([[0.0, 10, 0]]), torch.tensor([[10.0, 0, 0]])
    assert count_cross_entropy(good, labels) < count_cross_entropy(bad, labels)
