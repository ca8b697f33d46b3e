"""minibn agrees with PyTorch on the same weights (skipped where PyTorch is not installed)."""
import numpy as np
import pytest

from minibn import Tensor
from minibn import functional as F
from minibn.models import cifar_resnet, set_trainable
from minibn.optim import SGD
from minibn.torch_reference import load_minibn_state, set_torch_trainable, torch_cifar_resnet
from tests.conftest import host

torch = pytest.importorskip("torch")


def test_state_dict_names_map_one_to_one():
    ours = set(cifar_resnet(20).state_dict())
    theirs = {k for k in torch_cifar_resnet(20).state_dict() if not k.endswith("num_batches_tracked")}
    assert ours == theirs


@pytest.mark.parametrize("mode", ["bn", "all"])
def test_three_training_steps_match_pytorch(mode):
    torch.manual_seed(0)
    model = cifar_resnet(14, seed=0).double()
    set_trainable(model, mode)
    reference = torch_cifar_resnet(14).double()
    load_minibn_state(reference, model.state_dict())
    set_torch_trainable(reference, mode)
    ours_opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    their_opt = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                                weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = rng.standard_normal((8, 3, 32, 32)), rng.integers(0, 10, 8)
        ours_opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(x)), y)
        loss.backward()
        ours_opt.step()
        their_opt.zero_grad()
        their_loss = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
        their_loss.backward()
        their_opt.step()
        assert float(host(loss.data)) == pytest.approx(their_loss.item(), rel=1e-9)
    theirs = reference.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, theirs[name].numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
    model.eval(), reference.eval()
    x = rng.standard_normal((4, 3, 32, 32))
    np.testing.assert_allclose(host(model(Tensor(x)).data), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-7, atol=1e-9)
