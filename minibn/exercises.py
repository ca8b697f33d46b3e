"""The exercises of lessons/exercises/: their titles, and hints that teach without telling.

An exercise file assigns ``EXERCISE = "<name>"`` at its top level and defines what that exercise
asks for (a Function with a backward, or a function). ``minibn gradcheck FILE`` (or a folder of
them) runs it in a process of its own (minibn/submission.py) on inputs drawn per grading run, and
judges what comes back against the instructor's reference (minibn/exercise_cases.py): forward values,
gradients for a random upstream gradient in float64, or arrays against a reference. Each exercise
has three hints, from what the gradient depends on (level 1) to how to organize the code (level 3);
none gives the final formula or code: those, with the whole derivation, are in the reference
solutions (tests/exercise_solutions/), for instructors.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Exercise:
    title: str
    hints: tuple[str, str, str]


EXERCISES = {
    "relu": Exercise("ReLU backward", (
        "ReLU passes some inputs through and blocks the others. The gradient of each element depends only on "
        "that element: what is the slope of max(x, 0) left of 0, and right of it?",
        "The backward multiplies the upstream gradient g, element by element, by that local slope; the slope "
        "comes from the input saved in forward, and the result has x's shape.",
        "A comparison on the saved input gives an array of 0s and 1s (NumPy turns True into 1). Do not return the "
        "slope alone: the chain rule needs g too.")),
    "cross_entropy": Exercise("softmax cross-entropy backward", (
        "The loss is a mean over the N rows of -log softmax(logits)[label]. Each row's term depends only on that "
        "row's logits, so the gradient has the logits' shape (N, K), and every row is scaled by the mean's 1/N.",
        "Write one row's term as -z[y] + log(sum_j exp(z[j])) and differentiate with respect to z[k]: one part "
        "comes from the log-sum-exp, the other only from the label's own logit.",
        "The derivative of log-sum-exp is the softmax, which the saved log-probabilities give back through exp. "
        "Then treat the label's column of each row, the 1/N of the mean, and the upstream scalar g.")),
    "linear": Exercise("linear layer backward", (
        "out = x @ W.T + b. Each gradient has its input's shape: dx (N, in), dW (out, in), db (out,). Write the "
        "shapes down before any formula.",
        "out[n, o] = sum_i x[n, i] W[o, i] + b[o]. d out[n, o] / d x[n, i] is W[o, i] for every o, "
        "d out[n, o] / d W[o, i] is x[n, i] for every n, and b[o] is added to every row n.",
        "So each of dx and dW is a matrix product of g with one saved array, summing over the index the two "
        "share; transpose where the shapes ask for it. The bias collects g over the batch.")),
    "conv2d": Exercise("col2im and the convolution's backward", (
        "The forward is im2col, then one matrix multiply, then a reshape. Go back through them in reverse: the "
        "matrix multiply gives the weight's gradient and the columns' gradient; col2im turns the columns' "
        "gradient into the input's.",
        "The matrix-multiply part is the linear layer's backward, with the column matrix as the input. Reshape g "
        "to (O, N*Ho*Wo) with the channel axis first, so that its columns line up with those of cols.",
        "Patches overlap, so one pixel was copied into several columns, and its gradient collects all of those "
        "entries. Loop over the kernel offsets as im2col does, with the same strided slices, accumulate into the "
        "padded gradient, and cut the padding off at the end.")),
    "batch_norm": Exercise("BatchNorm backward (training mode)", (
        "xhat depends on x directly and through the batch mean and variance, which depend on every x of the "
        "channel: each x's gradient gathers contributions from its whole channel. dgamma and dbeta are sums over "
        "the axes the statistics use (N, H, W).",
        "Go one step at a time: dxhat from g and gamma; then through the division by the standard deviation "
        "(the variance depends on x); then through the subtraction of the mean. Lesson 05 builds the same "
        "function from small ops: compare each of your steps with autograd's.",
        "Simplified, dx needs only per-channel sums (of g, and of g times xhat), the count M, gamma, inv_std and "
        "xhat. Reshape (C,) arrays to (1, C, 1, 1) so that they broadcast over N, H, W.")),
    "im2col": Exercise("im2col (the forward gather)", (
        "cols[c, i, j, n, y, x] is the input pixel that kernel offset (i, j) of output pixel (y, x) reads. Pad the "
        "input first: then every offset reads a regular grid of pixels, with no edge cases.",
        "For offset (i, j), output pixel (y, x) reads padded row y * stride + i and column x * stride + j. Over all "
        "y and x that is one strided slice of the padded input.",
        "Loop over the kh * kw offsets only, never over pixels: each copies one slice into cols[:, i, j]. Mind the "
        "axis order: cols has channels first and the batch after the offsets, so move the input's N and C axes.")),
    "sgd": Exercise("SGD with momentum, weight decay and a mask", (
        "One step, for every element: add the weight decay to the gradient, keep only the trainable elements (the "
        "mask), update the momentum buffer, and move the parameter against the buffer.",
        "Weight decay is L2: it adds weight_decay times the parameter to the gradient. The momentum buffer "
        "remembers past updates; on the very first step there is none yet, and it starts from the current "
        "update alone.",
        "Change param and the buffer in place (the optimizer keeps both), and return the buffer, the one you made "
        "on the first step too. Apply the mask before the buffer, so that masked elements never move.")),
}
