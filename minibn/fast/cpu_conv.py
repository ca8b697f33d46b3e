"""Convolutions on the flat layout (layout.py), in chunks that fit the cache, on all cores.

Two ops, each a Function with its forward and backward side by side, and ``conv2d``, which
picks one (minibn/fast/__init__.py registers it for F.conv2d). Their textbook twin, and test oracle, is
minibn/conv.py's Conv2d: the same GEMMs, on (N, C, H, W) arrays.
- Conv3x3Flat: 3x3, stride 1, padding 1, flat in and flat out (same layout). Every output
  position, pads included, is computed, because each kernel offset is one contiguous slice.
- ConvStridedFlat: any k x k, stride s, padding p <= 1 (the ResNet's 3x3 stride 2 and its 1x1
  stride-2 shortcut): flat in (H x W), flat out (Ho x Wo), real pixels only.

Why chunks: the column matrix of a whole stage-1 layer at batch 128 is 9 x 16 x 139,000 floats,
80 MB, which would stream through memory twice (written, then read by the GEMM). A chunk of about
2 MiB of columns (the L2 cache of one core here) is gathered and multiplied while it is still in
the cache. Each thread takes an equal share of the chunks. In BN-only training the columns of a
frozen weight are never stored: the backward pass needs only the output gradient. When the weight
trains, each chunk is gathered again for dW.

With cols = the gathered patches (C*k*k, P) and g = dL/dout (O, P), as in minibn/conv.py:
    out = W_mat @ cols        dW = g @ cols^T        dcols = W_mat^T @ g -> dx
"""
from __future__ import annotations

import numpy as np

from minibn.autograd import Context
from minibn.conv import conv_output_size
from minibn.fast import buffers
from minibn.fast.buffers import scratch
from minibn.fast.layout import FlatFunction, FlatLayout, conv_window, keep, window
from minibn.fast.switches import switches
from minibn.fast.threads import in_parallel, num_threads, split
from minibn.tensor import Tensor


def chunk_bounds(count: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """Cut range(count) into chunks of about switches.chunk_bytes (a core's L2 cache), as many as a multiple
    of the threads."""
    parts = num_threads()
    chunks = max(1, -(-count * bytes_per_item // switches.chunk_bytes))
    chunks = min(-(-chunks // parts) * parts, count)
    return [(count * i // chunks, count * (i + 1) // chunks) for i in range(chunks)]


# ---- 3x3, stride 1: one contiguous slice per kernel offset --------------------------------------
def gather_3x3(source: np.ndarray, layout: FlatLayout, start: int, stop: int, cols: np.ndarray) -> None:
    """cols (9*C, stop-start) <- for offset (i, j) and channel c, source[c, M + q + (i-1)*Wp + (j-1)].

    One strided copy: as M = Wp + 1, offset (i, j) of output position q reads source[c, q + i*Wp + j],
    so a view with steps (Wp, 1, row, 1) from source[0, start] holds all nine slices.
    """
    c, length = source.shape
    cols.reshape(3, 3, c, stop - start)[...] = window(source, start, (3, 3, c, stop - start),
                                                      (layout.wp, 1, length, 1))


def _by_offset(weight: np.ndarray) -> np.ndarray:
    """(O, C, k, k) -> (O, k*k*C), columns ordered (i, j, c) as the gathers order the rows of cols."""
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1))


def conv3x3_flat(source: np.ndarray, w_mat: np.ndarray, layout: FlatLayout) -> np.ndarray:
    """(C, length) -> (O, length): out[:, M + q] = w_mat @ patch(q) at every position, pads zeroed."""
    out_channels, rows = w_mat.shape
    source = np.ascontiguousarray(source)  # window() views it as a raw buffer
    out = layout.empty(out_channels, source.dtype)  # margins zero; every position is written below
    image = layout.hp * layout.wp  # chunks of whole images, so that the chunk's pads are easy to find
    chunks = chunk_bounds(layout.n, rows * source.itemsize * image)

    def work(part, parts):
        for k in split(len(chunks), part, parts):
            first, last = chunks[k]
            cols = scratch("cols", (rows, (last - first) * image), source.dtype)
            gather_3x3(source, layout, first * image, last * image, cols)
            block = out[:, layout.margin + first * image:layout.margin + last * image]
            np.matmul(w_mat, cols, out=block)
            grid = block.reshape(out_channels, last - first, layout.hp, layout.wp)
            grid[:, :, layout.h, :] = 0  # what was computed at pad positions is garbage
            grid[:, :, :, layout.w] = 0
    in_parallel(work)
    return out


def weight_grad_3x3(g: np.ndarray, source: np.ndarray, layout: FlatLayout, shape) -> np.ndarray:
    """dW = sum over chunks of g_chunk @ cols_chunk^T, columns gathered again from the input."""
    rows, image = 9 * source.shape[0], layout.hp * layout.wp
    chunks = chunk_bounds(layout.n, rows * source.itemsize * image)
    source = np.ascontiguousarray(source)
    partial = []

    def work(part, parts):
        total = np.zeros((g.shape[0], rows), dtype=g.dtype)
        for k in split(len(chunks), part, parts):
            start, stop = chunks[k][0] * image, chunks[k][1] * image
            cols = scratch("cols", (rows, stop - start), source.dtype)
            gather_3x3(source, layout, start, stop, cols)
            total += g[:, layout.margin + start:layout.margin + stop] @ cols.T
        partial.append(total)
    in_parallel(work)
    out_channels, in_channels = shape[:2]
    return sum(partial).reshape(out_channels, 3, 3, in_channels).transpose(0, 3, 1, 2).copy()


class Conv3x3Flat(FlatFunction):
    """3x3 conv, stride 1, padding 1, on the flat layout.  x (C, L), weight (O, C, 3, 3) -> out (O, L).

    forward   out[:, q] = sum_ij W[:, :, i, j] @ x[:, q + (i-1)Wp + (j-1)]
    d x       dx[:, q]  = sum_ij W[:, :, 2-i, 2-j]^T @ g[:, q + (i-1)Wp + (j-1)]
              (the same gather, of g, with the kernel flipped and transposed: no col2im)
    d weight  dW[:, :, i, j] = sum_q g[:, q] x[:, q + (i-1)Wp + (j-1)]^T   (only if the weight trains)
    """

    @staticmethod
    def forward(ctx: Context, x, weight, layout: FlatLayout):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)  # x only for dW
        ctx.layout = layout
        return conv3x3_flat(x, _by_offset(weight), layout)

    @staticmethod
    def backward(ctx: Context, g):
        x, weight = ctx.saved
        dx = dw = None
        if ctx.needs_input_grad[0]:
            flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, O, 3, 3): W[o, c, 2-i, 2-j]
            dx = conv3x3_flat(g, _by_offset(flipped), ctx.layout)
        if ctx.needs_input_grad[1]:
            dw = weight_grad_3x3(g, x, ctx.layout, weight.shape)
        return dx, dw


# ---- strided: gather the real output pixels, image by image -------------------------------------
class ConvStridedFlat(FlatFunction):
    """k x k conv with stride s and padding p <= 1, flat (H x W layout) -> flat (Ho x Wo layout).

    x (C, L_in), weight (O, C, k, k) -> out (O, L_out). Per chunk of images, with cols the
    gathered patches (k*k*C, n*Ho*Wo) and g the output gradient at the real pixels (O, n*Ho*Wo):
    forward   out = W_mat @ cols
    d x       dcols = W_mat^T @ g, each offset's slice added back where it was read (col2im)
    d weight  dW = g @ cols^T   (only if the weight trains)
    """

    @staticmethod
    def forward(ctx: Context, x, weight, layout: FlatLayout, out_layout: FlatLayout, stride: int, padding: int):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)  # x only for dW
        ctx.geometry = layout, out_layout, stride, padding
        w_mat = _by_offset(weight)
        out = out_layout.empty(weight.shape[0], x.dtype)
        grid = out_layout.grid(out)
        k, out_hw = weight.shape[2], (out_layout.h, out_layout.w)
        chunks = chunk_bounds(layout.n, w_mat.shape[1] * out_hw[0] * out_hw[1] * x.itemsize)

        def work(part, parts):
            for c in split(len(chunks), part, parts):
                first, last = chunks[c]
                cols = scratch("cols", (w_mat.shape[1], (last - first) * out_hw[0] * out_hw[1]), x.dtype)
                cols.reshape(k, k, -1, last - first, *out_hw)[...] = conv_window(
                    x, layout, first, last - first, k, stride, padding, out_hw)
                pixels = scratch("pixels", (w_mat.shape[0], cols.shape[1]), x.dtype)
                np.matmul(w_mat, cols, out=pixels)
                grid[:, first:last, :out_hw[0], :out_hw[1]] = pixels.reshape(-1, last - first, *out_hw)
        in_parallel(work)
        return out_layout.zero_pads(out)

    @staticmethod
    def backward(ctx: Context, g):
        x, weight = ctx.saved
        layout, out_layout, stride, padding = ctx.geometry
        g = np.ascontiguousarray(g)
        w_mat = _by_offset(weight)
        k, out_hw = weight.shape[2], (out_layout.h, out_layout.w)
        g_pixels = out_layout.pixels(g)
        needs_x, needs_w = ctx.needs_input_grad
        dx = buffers.zeros((weight.shape[1], layout.length), g.dtype) if needs_x else None
        chunks = chunk_bounds(layout.n, w_mat.shape[1] * out_hw[0] * out_hw[1] * g.itemsize)
        partial = []

        def work(part, parts):
            total = np.zeros(w_mat.shape, dtype=g.dtype) if needs_w else None
            for c in split(len(chunks), part, parts):
                first, last = chunks[c]
                g_chunk = scratch("pixels", (w_mat.shape[0], (last - first) * out_hw[0] * out_hw[1]), g.dtype)
                g_chunk.reshape(-1, last - first, *out_hw)[...] = g_pixels[:, first:last]
                if needs_x:
                    dcols = np.matmul(w_mat.T, g_chunk,
                                      out=scratch("cols", (w_mat.shape[1], g_chunk.shape[1]), g.dtype))
                    dcols = dcols.reshape(k, k, -1, last - first, *out_hw)
                    patches = conv_window(dx, layout, first, last - first, k, stride, padding, out_hw)
                    for i in range(k):  # one offset at a time: the offsets overlap where patches do
                        for j in range(k):
                            patches[i, j] += dcols[i, j]
                if needs_w:
                    cols = scratch("cols", (w_mat.shape[1], g_chunk.shape[1]), x.dtype)
                    cols.reshape(k, k, -1, last - first, *out_hw)[...] = conv_window(
                        x, layout, first, last - first, k, stride, padding, out_hw)
                    total += g_chunk @ cols.T
            partial.append(total)
        in_parallel(work)
        # Threads on neighbouring images may both have added into the pad row between them: only
        # pads, which are zeroed here, so the race never touches a real pixel.
        dx = layout.zero_pads(dx) if needs_x else None
        dw = None
        if needs_w:
            dw = sum(partial).reshape(weight.shape[0], k, k, -1).transpose(0, 3, 1, 2).copy()
        return dx, dw


# ---- which op a conv layer runs ----------------------------------------------------------------
def has_flat_version(weight_shape, bias, padding: int) -> bool:
    """A square kernel, no bias, padding at most 1 (the flat layout's pads are one pixel wide)."""
    k = weight_shape[2]
    return bias is None and weight_shape[3] == k and padding <= min(1, k // 2)


def conv2d(x: Tensor, weight: Tensor, stride: int, padding: int) -> Tensor:
    """conv2d (no bias) of ``x`` in the flat layout; the output is in the flat layout of its own size."""
    layout, k = x.layout, weight.shape[2]
    if k == 3 and stride == 1 and padding == 1:
        return keep(Conv3x3Flat.apply(x, weight, layout=layout), layout)
    out_layout = FlatLayout(layout.n, *(conv_output_size(size, k, stride, padding) for size in (layout.h, layout.w)))
    out = ConvStridedFlat.apply(x, weight, layout=layout, out_layout=out_layout, stride=stride, padding=padding)
    return keep(out, out_layout)
