"""Reference solution of exercise 7 (SGD with momentum, weight decay and a mask), for instructors.

PyTorch's SGD (no Nesterov, no dampening), which minibn/optim.py follows:
    d   = grad + weight_decay * param        L2 weight decay, added to the gradient
    d   = d * mask                           masked elements get no update at all
    buf = d on the first step, else momentum * buf + d
    param -= lr * buf
On the first step the buffer is a copy of d (not momentum * 0 + d computed into a shared array),
so later in-place updates of buf never touch the gradient.
"""
EXERCISE = "sgd"


def sgd_step(param, grad, buffer, lr, momentum, weight_decay, mask=None):
    d = grad + weight_decay * param
    if mask is not None:
        d = d * mask
    if buffer is None:
        buffer = d.copy()
    else:
        buffer *= momentum
        buffer += d
    param -= lr * buffer
    return buffer
