"""Modules in the style of torch.nn: Parameter, Module, Sequential, Conv2d, BatchNorm2d, Linear, ReLU.

A Module finds its parameters, buffers and sub-modules by looking at its own
attributes (``vars(self)``), in the order they were set: no registration magic.
Buffers (BatchNorm's running statistics) are plain arrays whose names a module
lists with ``register_buffer``.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from minibn import backend
from minibn import functional as F
from minibn.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: requires_grad=True unless frozen.

    ``mask`` (None or a 0/1 array of the same shape) limits training to some elements:
    the optimizer never changes an element whose mask is 0 (the `random` mode).
    ``grad_buffer``: None, or where the backward pass puts the gradient (minibn/leaf_grads.py).
    """

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)
        self.mask = None
        self.grad_buffer = None


class Module:
    training = True
    _forward_pre_hooks: tuple = ()
    _forward_hooks: tuple = ()

    def __init__(self):
        self._buffer_names: list[str] = []

    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks:  # PyTorch's hooks: hook(module, args) before the forward,
            hook(self, args)
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:      # and hook(module, args, output) after it
            hook(self, args, out)
        return out

    def register_forward_pre_hook(self, hook) -> None:
        self._forward_pre_hooks = (*self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> None:
        self._forward_hooks = (*self._forward_hooks, hook)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def register_buffer(self, name: str, array) -> None:
        """Keep ``array`` as ``self.<name>``: state that is saved and moved but not trained."""
        setattr(self, name, array)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    # ---- walking the tree of modules -----------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        return (module for _, module in self.named_modules())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ("layer1.0.bn1.weight", ...), in definition order."""
        for prefix, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    yield (f"{prefix}.{name}" if prefix else name), value

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self) -> Iterator[tuple[str, object]]:
        """Buffers, then the masks of masked parameters (saved as "<name>_mask", as PyTorch's pruning does)."""
        yield from self._registered_buffers()
        for name, p in self.named_parameters():
            if p.mask is not None:
                yield f"{name}_mask", p.mask

    def _registered_buffers(self) -> Iterator[tuple[str, object]]:
        for prefix, module in self.named_modules():
            for name in module._buffer_names:
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    # ---- modes and gradients -------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # ---- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers as NumPy arrays (host copies), by dotted name."""
        state = {name: backend.to_host(p.data).copy() for name, p in self.named_parameters()}
        state.update({name: backend.to_host(b).copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters and buffers in place; names and shapes must match.

        Keys ending in "_mask" set the masks of the parameters they name (and no key means no mask).
        """
        params = dict(self.named_parameters())
        targets = {name: p.data for name, p in params.items()} | dict(self._registered_buffers())
        arrays = {name: a for name, a in state.items() if not name.endswith("_mask")}
        masks = {name[:-len("_mask")]: a for name, a in state.items() if name.endswith("_mask")}
        missing, unexpected = sorted(set(targets) - set(arrays)), sorted(set(arrays) - set(targets))
        unexpected += sorted(f"{name}_mask" for name in set(masks) - set(params))
        if missing or unexpected:
            raise KeyError(f"state dict does not match the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
        shapes = {name: target.shape for name, target in targets.items()}
        shapes |= {f"{name}_mask": params[name].shape for name in masks}  # a mask has its parameter's shape
        for name, shape in shapes.items():  # all checked before anything is copied
            if tuple(state[name].shape) != tuple(shape):
                raise ValueError(f"{name}: shape {tuple(state[name].shape)} in the state dict, "
                                 f"{tuple(shape)} in the model")
        for name, target in targets.items():
            target[...] = backend.to_device(arrays[name], dtype=target.dtype)
        for name, p in params.items():
            p.mask = backend.to_device(masks[name], dtype=p.dtype) if name in masks else None

    def to(self, dtype) -> "Module":
        """Cast parameters, masks and buffers to ``dtype`` (float32 to train, float64 to check)."""
        for p in self.parameters():
            p.data, p.grad, p.grad_buffer = p.data.astype(dtype), None, None  # the optimizer makes new packed buffers
            if p.mask is not None:
                p.mask = p.mask.astype(dtype)
        for module in self.modules():
            for name in module._buffer_names:
                setattr(module, name, getattr(module, name).astype(dtype))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)


class Sequential(Module):
    """Modules applied one after another; the i-th is the attribute "i" (names like "shortcut.0")."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __getitem__(self, i: int) -> Module:
        return getattr(self, str(i))

    def __len__(self) -> int:
        return sum(1 for _ in self.named_children())

    def forward(self, x):
        for _, module in self.named_children():
            x = module(x)
        return x


def _kaiming_normal(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    """He initialization: N(0, 2 / fan_in), right for layers followed by ReLU."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)


class Conv2d(Module):
    """A 2-D convolution layer; weight (O, C, k, k), He-normal init. ``rng`` makes init repeatable."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = False, rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng()
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = Parameter(_kaiming_normal(rng, (out_channels, in_channels, kernel_size, kernel_size), fan_in))
        bound = 1 / math.sqrt(fan_in)
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(np.float32)) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class BatchNorm2d(Module):
    """BatchNorm over channels: weight = gamma ~ U[0, 1), bias = beta = 0 (the recipe's init).

    Works on (N, C, H, W) and (N, C). The running statistics (``running_mean``, ``running_var``: the same
    arrays for the module's life) update in place in every training forward, also when gamma and beta
    are frozen.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng()
        self.weight = Parameter(rng.uniform(0.0, 1.0, num_features).astype(np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", backend.to_device(np.zeros(num_features, dtype=np.float32)))
        self.register_buffer("running_var", backend.to_device(np.ones(num_features, dtype=np.float32)))
        self.eps, self.momentum = eps, momentum

    def forward(self, x):
        return F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def forward_relu(self, x, residual=None):
        """relu(self(x) + residual), or relu(self(x)) without a residual: F.batch_norm_relu, exactly those
        textbook ops, or one fused op where a fast version exists."""
        return F.batch_norm_relu(x, self.weight, self.bias, self.running_mean, self.running_var,
                                 training=self.training, residual=residual, momentum=self.momentum, eps=self.eps)


class Linear(Module):
    """out = x W^T + b; weight He-normal, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None):
        super().__init__()
        rng = rng or np.random.default_rng()
        self.weight = Parameter(_kaiming_normal(rng, (out_features, in_features), in_features))
        bound = 1 / math.sqrt(in_features)
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(np.float32)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)
