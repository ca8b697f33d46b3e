"""minibn: a small deep-learning library on NumPy and CuPy, written to be read.

    import minibn
    x = minibn.Tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2 x

``import minibn`` also gives minibn.nn, minibn.functional, minibn.optim and minibn.models, as
``import torch`` gives torch.nn (CuPy is imported only when a backend asks for it), and switches on the
fast paths: minibn.fast registers its ops with minibn/registry.py (``minibn.fast.use(...)`` sets them).
"""
from minibn.backend import BackendError, backend_name, synchronize, to_device, to_host, use_backend
from minibn.gradcheck import GradcheckResult, gradcheck, rel_error
from minibn.serialization import load, save
from minibn.tensor import BackwardContractError, Function, Tensor, is_grad_enabled, no_grad
from minibn import fast, functional, models, nn, optim

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "BackwardContractError", "no_grad", "is_grad_enabled", "use_backend", "backend_name",
           "BackendError", "synchronize", "to_device", "to_host", "gradcheck", "GradcheckResult",
           "rel_error", "save", "load", "nn", "functional", "optim", "models", "fast", "__version__"]
