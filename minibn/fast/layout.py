"""The flat layout: a padded batch of feature maps as one (C, L) array, channel-major.

Each image row is followed by one zero, which is the right pad of this row and the left pad of
the next; each image is followed by one row of zeros, its bottom pad and the top pad of the next
image; and the whole batch has a margin of zeros before and after. For N = 2 images of H x W = 3 x 3
(a, b are pixels, . are zeros), one channel's row of the array reads, wrapped at Wp = W + 1:

    . . . .  .        margin: M = Wp + 1 zeros (the top-left pad of the first image)
    a a a .           image 0, row 0   <- pixel (n, y, x) sits at M + n*Hp*Wp + y*Wp + x
    a a a .           image 0, row 1
    a a a .           image 0, row 2
    . . . .           image 0's pad row (Hp = H + 1 rows per image)
    b b b .           image 1, row 0
    ...
    . . . .  .        margin: M zeros

Why: a 3x3 convolution with padding 1 reads, for kernel offset (i, j), the pixel at position
p + (i-1)*Wp + (j-1). In this layout that is the same shift for every output position p, so the
input that offset (i, j) needs for a run of outputs is one contiguous slice of each channel's row:
im2col becomes nine block copies (or a single strided copy), and the input gradient of a stride-1
conv is the same gather of the output gradient, with no col2im scatter and no NCHW transposes.

The price: outputs computed at pad positions are garbage. Every op of the fast path leaves zeros
in all pads and margins of what it returns (activations and gradients alike), and may rely on
finding zeros there. Zero pads also let BatchNorm sum over every position of a row.

A batch in this layout travels as a FlatTensor (below): a Tensor whose array is the (C, length) one,
whose ``layout`` is its FlatLayout, and whose ``shape`` and ``data`` are still the (N, C, H, W) ones.
The ops written for the layout are FlatFunctions and take it as it is; any other op gets it back in
(N, C, H, W) first (FlatTensor.as_input_of), so no op ever sees an array it does not understand.
ToFlat and FromFlat are the two conversions, as ops with a backward. The engine (minibn/autograd.py)
knows nothing of this. The layout is plain ``xp`` code; only the reuse of NumPy arrays (buffers.py) is
NumPy's.
"""
from __future__ import annotations

from dataclasses import dataclass

from minibn import ops
from minibn.autograd import Context, Function
from minibn.backend import array_module
from minibn.fast import buffers
from minibn.tensor import Tensor


@dataclass(frozen=True)
class FlatLayout:
    """Where the N x H x W pixels of a batch sit in a flat (C, length) array (see the module docstring)."""

    n: int
    h: int
    w: int

    @property
    def wp(self) -> int:  # a row with its one pad
        return self.w + 1

    @property
    def hp(self) -> int:  # an image with its pad row
        return self.h + 1

    @property
    def margin(self) -> int:  # the furthest a 3x3 kernel reaches from a position
        return self.wp + 1

    @property
    def positions(self) -> int:  # every pixel and pad of every image
        return self.n * self.hp * self.wp

    @property
    def length(self) -> int:
        return self.positions + 2 * self.margin

    @property
    def pixels_per_channel(self) -> int:  # M of BatchNorm: the real pixels only
        return self.n * self.h * self.w

    def nchw_shape(self, channels: int) -> tuple[int, int, int, int]:
        return self.n, channels, self.h, self.w

    def grid(self, flat):
        """A view (C, N, Hp, Wp) of every image with its pads (no copy)."""
        return flat[:, self.margin:self.margin + self.positions].reshape(flat.shape[0], self.n, self.hp, self.wp)

    def pixels(self, flat):
        """A view (C, N, H, W) of the real pixels only (no copy)."""
        return self.grid(flat)[:, :, :self.h, :self.w]

    def empty(self, channels: int, dtype, xp=None):
        """A (C, length) array whose margins are zero; the caller fills every position."""
        flat = buffers.empty((channels, self.length), dtype, xp)
        flat[:, :self.margin] = 0
        flat[:, self.margin + self.positions:] = 0
        return flat

    def zero_pads(self, flat):
        """Write zeros into the pads and margins of ``flat`` (in place), leaving the pixels alone."""
        grid = self.grid(flat)
        grid[:, :, self.h, :] = 0
        grid[:, :, :, self.w] = 0
        flat[:, :self.margin] = 0
        flat[:, self.margin + self.positions:] = 0
        return flat

    def nchw_view(self, flat):
        """The (N, C, H, W) pixels of ``flat``, as a view (no copy): what Tensor.data shows."""
        return self.pixels(flat).transpose(1, 0, 2, 3)


class FlatFunction(Function):
    """An op written for the flat layout: it takes FlatTensors as they are (their (C, length) arrays)."""


KEEP_FLAT = (ops.Add, ops.Sub, ops.Mul, ops.Neg, ops.ReLU)  # elementwise, and 0 (op) 0 = 0


class FlatTensor(Tensor):
    """An (N, C, H, W) batch stored in the flat layout: ``_data`` is the (C, length) array, what FlatFunctions
    get; ``data`` is an (N, C, H, W) view of its pixels and ``shape`` is (N, C, H, W), what everyone else sees."""

    def __init__(self, flat_array, layout: FlatLayout, requires_grad: bool = False):
        super().__init__(flat_array, requires_grad)
        self.layout = layout

    def as_input_of(self, op, inputs: tuple) -> Tensor:
        """Itself for an op written for the layout, and for an elementwise op that maps zeros to zero when all
        its inputs are in this layout (the pads stay zero); for any other op, converted to (N, C, H, W)."""
        if issubclass(op, FlatFunction) or (op in KEEP_FLAT and all(
                isinstance(x, FlatTensor) and x.layout == self.layout for x in inputs)):
            return self
        return self.to_nchw()

    def result(self, op, array) -> Tensor:
        """An elementwise op run on the flat arrays returns them in the same layout; a FlatFunction's output is
        made a FlatTensor of its own layout by ``keep``."""
        return FlatTensor(array, self.layout) if op in KEEP_FLAT else Tensor(array)

    def to_nchw(self) -> Tensor:
        return FromFlat.apply(self, layout=self.layout)

    @property
    def data(self):
        return self.layout.nchw_view(self._data)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.layout.nchw_shape(self._data.shape[0])

    def detach(self) -> "FlatTensor":
        return FlatTensor(self._data, self.layout)

    def backward(self, grad=None) -> None:
        self.to_nchw().backward(grad)  # the upstream gradient is (N, C, H, W), like the shape


def window(flat, start: int, shape: tuple[int, ...], steps: tuple[int, ...]):
    """A strided view of the contiguous (C, length) array ``flat``, starting at flat[0, start], whose axes step
    by ``steps`` elements (the channel axis by a whole row): no copy. The one strided gather of the fast
    paths: a copy out of it is im2col (cpu_conv.py, gpu.py)."""
    assert flat.flags.c_contiguous
    last = start + sum((size - 1) * step for size, step in zip(shape, steps))
    assert start >= 0 and last < flat.size, "the window must stay inside the array"
    strides = tuple(step * flat.itemsize for step in steps)
    return array_module(flat).lib.stride_tricks.as_strided(flat.reshape(-1)[start:], shape, strides)


def conv_window(flat, layout: FlatLayout, first: int, images: int, k: int, stride: int, padding: int,
                out_hw: tuple[int, int]):
    """A view (k, k, C, images, Ho, Wo) of ``flat``: entry (i, j, c, n, y, x) is input pixel
    (first + n, stride*y + i - padding, stride*x + j - padding) of channel c (a pad when off the image)."""
    wp, image = layout.wp, layout.hp * layout.wp
    start = layout.margin + first * image - padding * wp - padding
    shape = (k, k, flat.shape[0], images, *out_hw)
    return window(flat, start, shape, (wp, 1, flat.shape[1], image, stride * wp, stride))


def to_flat(images, layout: FlatLayout):
    """(N, C, H, W) -> (C, length) in the flat layout, pads zero."""
    flat = buffers.zeros((images.shape[1], layout.length), images.dtype, array_module(images))
    layout.pixels(flat)[...] = images.transpose(1, 0, 2, 3)
    return flat


def from_flat(flat, layout: FlatLayout):
    """(C, length) -> (N, C, H, W), a contiguous copy of the pixels."""
    return array_module(flat).ascontiguousarray(layout.pixels(flat).transpose(1, 0, 2, 3))


class ToFlat(Function):
    """(N, C, H, W) -> (C, length) in the flat layout.  dx = the pixels of g, back in NCHW."""

    @staticmethod
    def forward(ctx: Context, images, layout: FlatLayout):
        ctx.layout = layout
        return to_flat(images, layout)

    @staticmethod
    def backward(ctx: Context, g):
        return from_flat(g, ctx.layout)


class FromFlat(FlatFunction):
    """(C, length) -> (N, C, H, W), the pixels only.  dx = g in the flat layout, zeros at the pads."""

    @staticmethod
    def forward(ctx: Context, flat, layout: FlatLayout):
        ctx.layout = layout
        return from_flat(flat, layout)

    @staticmethod
    def backward(ctx: Context, g):
        return to_flat(g, ctx.layout)


def flat(x: Tensor) -> FlatTensor:
    """``x`` in the flat layout: as it is if it already is, else converted (ToFlat), e.g. at a network's stem."""
    if isinstance(x, FlatTensor):
        return x
    n, _, h, w = x.shape
    layout = FlatLayout(n, h, w)
    return keep(ToFlat.apply(x, layout=layout), layout)


def keep(out: Tensor, layout: FlatLayout) -> FlatTensor:
    """The output of a flat op, as the FlatTensor in ``layout`` that it is (the same array and graph node)."""
    kept = FlatTensor(out._data, layout, out.requires_grad)
    kept._ctx = out._ctx
    return kept
