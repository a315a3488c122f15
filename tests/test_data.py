"""The built-in data sources read the offline files they name, at the model's input shape."""
import torch
from torch.utils.data import TensorDataset

from mobileprune.data import load_data, top1


def test_fashion_mnist_splits_and_shapes():
    data = load_data("fashion-mnist", (1, 3, 64, 64))
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    x, y = data.val[0]
    assert x.shape == (3, 64, 64) and torch.equal(x[0], x[2]) and 0 <= int(y) < 10
    labels = torch.stack([data.train[i][1] for i in range(2000)])
    assert len(labels.unique()) == 10  # real labels, not a constant


def test_mnist_from_its_package():
    data = load_data("mnist", (1, 1, 28, 28))
    assert (len(data.train), len(data.val), len(data.test)) == (50000, 10000, 10000)
    x, _ = data.train[0]
    assert x.shape == (1, 28, 28) and x.std() > 0.1


def test_user_factory_and_top1(tmp_path):
    src = tmp_path / "mydata.py"
    src.write_text("import torch\nfrom torch.utils.data import TensorDataset\n"
                   "def make(shape):\n"
                   "    x = torch.randn(20, *shape)\n"
                   "    return TensorDataset(x, torch.zeros(20, dtype=torch.long)), TensorDataset(x, torch.zeros(20, dtype=torch.long))\n")
    data = load_data(f"{src}:make", (1, 2, 4, 4))
    assert data.train[0][0].shape == (2, 4, 4)
    always_zero = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 3))
    with torch.no_grad():
        always_zero[1].weight.zero_()
        always_zero[1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    assert top1(always_zero, data.val) == 1.0
    assert top1(always_zero, TensorDataset(torch.randn(5, 2, 4, 4), torch.ones(5, dtype=torch.long))) == 0.0
