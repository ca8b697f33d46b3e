"""Reference solution of exercise 5 (BatchNorm, training mode, fused backward), for instructors.

Per channel, over its M = N*H*W values: mu = mean(x), var = mean((x - mu)^2), s = 1/sqrt(var + eps),
xhat = (x - mu) s, y = gamma xhat + beta. With g = dL/dy:
  dbeta = sum(g),  dgamma = sum(g * xhat),  dxhat = gamma g
  dvar  = sum(dxhat (x - mu)) * (-1/2) s^3
  dmu   = -s sum(dxhat) + dvar * mean(-2 (x - mu)) = -s sum(dxhat)        (the second term is 0)
  dx    = dxhat s + dvar * 2 (x - mu) / M + dmu / M
Substituting sum(dxhat) = gamma dbeta and sum(dxhat xhat) = gamma dgamma:
  dx = gamma s / M * (M g - dbeta - xhat * dgamma)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

stub = load_stub("ex_batchnorm")
EXERCISE = stub.EXERCISE


class BatchNorm(stub.BatchNorm):
    @staticmethod
    def backward(ctx, g):
        xhat, inv_std, gamma = ctx.saved
        m = g.size // g.shape[1]
        shape = (1, g.shape[1], 1, 1)
        dbeta = g.sum(axis=(0, 2, 3))
        dgamma = (g * xhat).sum(axis=(0, 2, 3))
        dx = gamma.reshape(shape) * inv_std / m * (m * g - dbeta.reshape(shape) - xhat * dgamma.reshape(shape))
        return dx, dgamma, dbeta
