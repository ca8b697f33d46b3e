"""Exercise 7: one step of SGD with momentum, weight decay and a mask (the optimizer of minibn/optim.py).

Given a parameter, its gradient and its momentum buffer, update the parameter as PyTorch's SGD does,
with L2 weight decay added to the gradient, and a 0/1 mask (or None) that says which elements train
(the `random` mode of the experiment trains 2 weights per filter). Grade it against minibn's SGD,
over three steps from an empty buffer:

    minibn gradcheck lessons/exercises/ex_sgd.py
"""
EXERCISE = "sgd"


def sgd_step(param, grad, buffer, lr, momentum, weight_decay, mask=None):
    """Update ``param`` in place and return the momentum buffer (None before the first step).

    param, grad: arrays of one shape; buffer: None or an array of that shape, from the previous step;
    lr, momentum, weight_decay: numbers; mask: None (everything trains) or a 0/1 array of that shape.
    """
    # TODO: the update direction: the gradient plus the weight decay, restricted to the mask.
    # TODO: the momentum buffer: what is it on the very first step, and what afterwards?
    # TODO: move the parameter, in place, and return the buffer.
    raise NotImplementedError("write sgd_step")
