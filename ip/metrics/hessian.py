"""Hessian spectra over the trainable unpruned coordinates.

The operator is the Hessian of the mean data loss on a fixed list of batches, with BN
in ``bn_mode`` (STUDY_SPEC section 3: ``"batch"``, alias ``"train"``, normalises each
batch with its own statistics, the loss a training step sees and the study's default
:data:`~ip.metrics.batchnorm.DEFAULT_BN_MODE`; ``"running"``, alias ``"eval"`` and
still the default here, uses the running statistics), restricted to the coordinates of
a :class:`~ip.metrics.gradient_flow.CoordinateSet`: pruned coordinates are not part of
the operator's dimension (they are not zero rows, which would add spurious zero
eigenvalues).  Formally, with P the selection of kept coordinates, the operator is
P^T H P evaluated at the stored parameters (pruned entries zero).  Hessian-vector products use
double backward, one batch at a time, inside
:func:`~ip.metrics.batchnorm.bn_context`, so BN buffers and module flags are the same
after every product as before (in ``"batch"`` mode the forwards would otherwise move
the running statistics).

Estimators (each validated against an exact Hessian in ``tests/test_hessian.py``):

- :func:`top_eigenvalues`: implicitly restarted Lanczos (ARPACK via
  ``scipy.sparse.linalg.eigsh``), ``which='LA'`` by default: the k largest *algebraic*
  eigenvalues, the sharpness directions.  ``which='LM'`` gives the largest in modulus,
  which is what power iteration converges to.
- :func:`power_iteration_top_k`: power iteration with deflation, the method of
  PyHessian (Yao et al. 2020); kept as the baseline of ``benchmarks/hessian.py``.
- :func:`hutchinson_trace`: Hutchinson's estimator with Rademacher probes, with its
  standard error.
- :func:`slq_density`: stochastic Lanczos quadrature (Ghorbani et al. 2019; Lin et al.
  2016) with Gaussian smoothing.

:func:`gauss_newton_trace` computes the trace of the Hessian's Gauss-Newton part exactly
(no probes): the rest of the trace is the residual term, which explains its sign.

Every estimator takes either a :class:`HessianOperator` or anything
``scipy.sparse.linalg.aslinearoperator`` accepts (a dense symmetric matrix, say) and
reports ``hvps``, the number of operator applications it made.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, aslinearoperator, eigsh
from torch import nn

from ..masks import Masks
from .batchnorm import DEFAULT_BN_MODE, bn_context, resolve_bn_mode
from .gradient_flow import (Batches, CoordinateSet, LossFn, _to_model, as_batches, check_pruned_zero,
                            full_gradient, subset_loss_terms, trainable_coordinates)

EIGSH_WHICH = ("LA", "LM")


class HessianOperator:
    """H v for v in the space of trainable unpruned coordinates.

    ``coords`` defaults to ``trainable_coordinates(model, masks)`` (prunable entries the
    mask keeps, FBs, BN parameters, biases).  ``matvec`` takes and returns float64
    vectors of length ``dim`` (numpy or torch); the product itself is computed in the
    model's dtype.  ``num_hvp`` counts products (one per vector, whatever the number
    of batches).  ``bn_mode``: see the module docstring (default ``"eval"``, i.e. running).
    """

    def __init__(self, model: nn.Module, batches: Batches, masks: Masks | None = None,
                 loss_fn: LossFn = F.cross_entropy, coords: CoordinateSet | None = None,
                 bn_mode: str = DEFAULT_BN_MODE):
        self.model = model
        self.batches = as_batches(batches)
        self.loss_fn = loss_fn
        self.coords = coords if coords is not None else trainable_coordinates(model, masks)
        resolve_bn_mode(bn_mode)  # an unknown mode fails here, not at the first product
        self.bn_mode = bn_mode
        check_pruned_zero(self.coords)
        self.dim = self.coords.dim
        self.num_hvp = 0
        self.seconds = 0.0
        first = self.coords.params[0]
        self.dtype, self.device = first.dtype, first.device

    def _hvp(self, v: torch.Tensor) -> torch.Tensor:
        params = self.coords.params
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        with bn_context(self.model, self.bn_mode):
            for term in subset_loss_terms(self.model, self.batches, self.loss_fn):
                grads = torch.autograd.grad(term, params, create_graph=True, allow_unused=True)
                g = self.coords.gather(grads)
                dot = torch.dot(g, v)
                if not dot.requires_grad:  # the loss is linear in every coordinate
                    continue
                second = torch.autograd.grad(dot, params, allow_unused=True)
                out += self.coords.gather(second).detach()
        return out

    def matvec(self, v) -> np.ndarray | torch.Tensor:
        """H v; numpy in -> numpy float64 out, torch in -> torch float64 out."""
        is_numpy = not isinstance(v, torch.Tensor)
        vt = torch.as_tensor(np.asarray(v).reshape(-1) if is_numpy else v.reshape(-1))
        if vt.numel() != self.dim:
            raise ValueError(f"vector has {vt.numel()} entries, the operator has dimension {self.dim}")
        start = time.perf_counter()
        hv = self._hvp(vt.to(device=self.device, dtype=self.dtype)).to(torch.float64).cpu()
        self.seconds += time.perf_counter() - start
        self.num_hvp += 1
        return hv.numpy() if is_numpy else hv

    def gradient(self) -> torch.Tensor:
        """The full-subset gradient over the same coordinates (float64)."""
        return full_gradient(self.model, self.batches, self.coords, self.loss_fn, self.bn_mode)[1].to(torch.float64)

    def as_linear_operator(self) -> LinearOperator:
        return LinearOperator((self.dim, self.dim), matvec=lambda v: self.matvec(np.asarray(v, dtype=np.float64)),
                              rmatvec=lambda v: self.matvec(np.asarray(v, dtype=np.float64)),
                              dtype=np.float64)

    def dense(self) -> np.ndarray:
        """The whole operator as a dim x dim matrix (dim HVPs; small networks only)."""
        eye = np.eye(self.dim)
        return np.stack([self.matvec(eye[:, i]) for i in range(self.dim)], axis=1)


class _Counting:
    """Applies an operator to float64 vectors and counts the applications."""

    def __init__(self, op):
        self.linear = op.as_linear_operator() if isinstance(op, HessianOperator) else aslinearoperator(op)
        self.dim = self.linear.shape[0]
        self.count = 0

    def __call__(self, v: np.ndarray) -> np.ndarray:
        self.count += 1
        return np.asarray(self.linear.matvec(np.asarray(v, dtype=np.float64))).reshape(-1).astype(np.float64)

    def as_linear_operator(self) -> LinearOperator:
        return LinearOperator((self.dim, self.dim), matvec=self, rmatvec=self, dtype=np.float64)


def _rng(generator: np.random.Generator | int | None) -> np.random.Generator:
    return generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)


def top_eigenvalues(op, k: int = 5, tol: float = 1e-3, which: str = "LA", ncv: int | None = None,
                    maxiter: int | None = None, generator: np.random.Generator | int | None = 0,
                    return_eigenvectors: bool = False) -> dict:
    """The k top eigenvalues by implicitly restarted Lanczos (ARPACK ``eigsh``).

    ``tol`` is ARPACK's relative accuracy: a Ritz pair is accepted when its residual
    norm is below ``tol * |theta|``, which bounds the eigenvalue error by the same
    amount (and by residual^2 / gap when eigenvalues are separated).  The start vector
    is drawn from ``generator`` so results are reproducible.

    Returns ``eigenvalues`` (descending, numpy), ``hvps``, ``seconds``, ``which``, and
    ``eigenvectors`` (dim x k, columns) when asked.
    """
    if which not in EIGSH_WHICH:
        raise ValueError(f"which must be one of {EIGSH_WHICH}, got {which!r}")
    counter = _Counting(op)
    if not 0 < k < counter.dim:
        raise ValueError(f"k must be in [1, dim - 1] = [1, {counter.dim - 1}], got {k}")
    v0 = _rng(generator).standard_normal(counter.dim)
    start = time.perf_counter()
    vals, vecs = eigsh(counter.as_linear_operator(), k=k, which=which, tol=tol, ncv=ncv, maxiter=maxiter, v0=v0)
    seconds = time.perf_counter() - start
    order = np.argsort(vals)[::-1]
    out = {"eigenvalues": vals[order], "hvps": counter.count, "seconds": seconds, "which": which}
    if return_eigenvectors:
        out["eigenvectors"] = vecs[:, order]
    return out


def power_iteration_top_k(op, k: int = 5, tol: float = 1e-3, max_iter: int = 1000,
                          generator: np.random.Generator | int | None = 0) -> dict:
    """Top-k eigenvalues (largest modulus) by power iteration with deflation (PyHessian).

    For eigenvalue i a random vector is orthogonalised against the eigenvectors found so
    far, normalised and multiplied by H, repeatedly; the Rayleigh quotient is accepted
    when it changes by less than ``tol`` relative to its previous value (PyHessian's
    stopping rule, which is a convergence heuristic, not an error bound).

    Returns ``eigenvalues`` (in the order found; descending modulus when converged),
    ``eigenvectors`` (dim x k), ``iterations`` per eigenvalue, ``converged`` flags,
    ``hvps``, ``seconds``.
    """
    counter = _Counting(op)
    rng = _rng(generator)
    found_vals: list[float] = []
    found_vecs: list[np.ndarray] = []
    iterations, converged = [], []
    start = time.perf_counter()
    for _ in range(k):
        v = rng.standard_normal(counter.dim)
        eigenvalue = None
        ok = False
        it = 0
        for it in range(1, max_iter + 1):
            for u in found_vecs:  # deflation: stay orthogonal to the found eigenvectors
                v = v - np.dot(u, v) * u
            v = v / np.linalg.norm(v)
            hv = counter(v)
            new = float(np.dot(v, hv))
            if eigenvalue is not None and abs(new - eigenvalue) / (abs(eigenvalue) + 1e-6) < tol:
                eigenvalue = new
                ok = True
                break
            eigenvalue = new
            v = hv
        for u in found_vecs:
            v = v - np.dot(u, v) * u
        found_vals.append(eigenvalue)
        found_vecs.append(v / np.linalg.norm(v))
        iterations.append(it)
        converged.append(ok)
    return {"eigenvalues": np.array(found_vals), "eigenvectors": np.stack(found_vecs, axis=1),
            "iterations": iterations, "converged": converged, "hvps": counter.count,
            "seconds": time.perf_counter() - start}


def rademacher(dim: int, generator: np.random.Generator | int | None = None) -> np.ndarray:
    return _rng(generator).choice(np.array([-1.0, 1.0]), size=dim)


def hutchinson_trace(op, num_probes: int = 100, generator: np.random.Generator | int | None = 0) -> dict:
    """tr(H) ~ mean over Rademacher probes z of z^T H z.

    Returns ``trace`` (the estimate), ``stderr`` (sample standard deviation of the
    probe values / sqrt(num_probes)), ``num_probes``, ``samples`` (the probe values) and
    ``hvps``.  Unbiased; its variance is 2 * (||H||_F^2 - sum_i H_ii^2) per probe.
    """
    if num_probes < 2:
        raise ValueError("num_probes must be at least 2 to estimate a standard error")
    counter = _Counting(op)
    rng = _rng(generator)
    samples = np.empty(num_probes)
    for i in range(num_probes):
        z = rademacher(counter.dim, rng)
        samples[i] = np.dot(z, counter(z))
    return {"trace": float(samples.mean()), "stderr": float(samples.std(ddof=1) / np.sqrt(num_probes)),
            "num_probes": num_probes, "samples": samples, "hvps": counter.count}


def lanczos(matvec: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos tridiagonalisation with full re-orthogonalisation.

    Returns the diagonal ``alpha`` (m) and off-diagonal ``beta`` (m-1) of T, m <= steps
    (fewer when an invariant subspace is found).  Full re-orthogonalisation (twice,
    classical Gram-Schmidt) keeps the Ritz values free of spurious copies, which SLQ
    weights would otherwise count twice.
    """
    dim = v0.shape[0]
    steps = min(steps, dim)
    basis = np.zeros((steps, dim))
    alpha, beta = [], []
    q = v0 / np.linalg.norm(v0)
    for j in range(steps):
        basis[j] = q
        w = matvec(q)
        a = float(np.dot(q, w))
        alpha.append(a)
        for _ in range(2):
            w = w - basis[:j + 1].T @ (basis[:j + 1] @ w)
        b = float(np.linalg.norm(w))
        if j == steps - 1:
            break
        if b <= 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        q = w / b
    return np.array(alpha), np.array(beta)


def lanczos_quadrature(matvec: Callable[[np.ndarray], np.ndarray], v: np.ndarray, steps: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral measure of H seen from v.

    With T = Q diag(theta) Q^T the Lanczos matrix from v / ||v||, the nodes are theta and
    the weights Q[0, :]^2 (they sum to 1).  The rule is exact for polynomials of degree
    < 2m: sum_j w_j theta_j^p = v^T H^p v / v^T v.
    """
    alpha, beta = lanczos(matvec, v, steps)
    tri = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    nodes, vecs = np.linalg.eigh(tri)
    return nodes, vecs[0] ** 2


def slq_density(op, num_probes: int = 10, lanczos_steps: int = 80, grid: np.ndarray | None = None,
                num_grid: int = 1000, sigma: float | None = None,
                generator: np.random.Generator | int | None = 0) -> dict:
    """Spectral density by stochastic Lanczos quadrature with Gaussian smoothing.

    The density of eigenvalues (normalised to integrate to 1) is estimated as
    phi(t) = mean over probes of sum_j w_j N(t; theta_j, sigma^2), with (theta, w) the
    quadrature of :func:`lanczos_quadrature` from a Rademacher probe.  Its mean is
    tr(H)/dim and its second moment (without the sigma^2 of smoothing) tr(H^2)/dim, in
    expectation.  ``sigma`` defaults to 1 % of the node range; the default grid spans
    the nodes +- 5 sigma, so the density integrates to 1 up to discretisation.

    Returns ``grid``, ``density``, ``nodes`` and ``weights`` (num_probes x m arrays, or
    lists of arrays when Lanczos stopped early), ``sigma``, ``moments`` (the discrete
    measure's first and second moments, i.e. estimates of tr(H)/dim and tr(H^2)/dim),
    ``hvps``.
    """
    counter = _Counting(op)
    rng = _rng(generator)
    nodes, weights = [], []
    for _ in range(num_probes):
        z = rademacher(counter.dim, rng)
        n, w = lanczos_quadrature(counter, z, lanczos_steps)
        nodes.append(n)
        weights.append(w)
    all_nodes = np.concatenate(nodes)
    lo, hi = float(all_nodes.min()), float(all_nodes.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(1e-3 * abs(hi), 1e-8)
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, num_grid)
    grid = np.asarray(grid, dtype=np.float64)
    density = np.zeros_like(grid)
    for n, w in zip(nodes, weights):
        density += (w[None, :] * np.exp(-0.5 * ((grid[:, None] - n[None, :]) / sigma) ** 2)).sum(axis=1)
    density /= num_probes * sigma * np.sqrt(2 * np.pi)
    first = float(np.mean([np.dot(w, n) for n, w in zip(nodes, weights)]))
    second = float(np.mean([np.dot(w, n ** 2) for n, w in zip(nodes, weights)]))
    same_length = len({len(n) for n in nodes}) == 1
    return {"grid": grid, "density": density,
            "nodes": np.stack(nodes) if same_length else nodes,
            "weights": np.stack(weights) if same_length else weights,
            "sigma": sigma, "moments": {"mean": first, "second": second}, "hvps": counter.count}


def gauss_newton_trace(model: nn.Module, batches: Batches, masks: Masks | None = None,
                       coords: CoordinateSet | None = None, bn_mode: str = DEFAULT_BN_MODE) -> dict:
    """Exact trace of the Gauss-Newton part of the Hessian of the mean cross-entropy.

    With logits z_i of sample i, p_i = softmax(z_i) and N samples, the Hessian over the
    coordinates is G + R: G = sum_i J_i^T (diag p_i - p_i p_i^T) J_i / N (J_i = dz_i/dtheta,
    positive semi-definite) and R = sum_i sum_c (p_ic - y_ic) d^2 z_ic / N, the residual
    term.  A network that is linear in each parameter tensor taken alone (convolutions,
    ReLUs, pooling, BN as a fixed affine map) has d^2 z with a zero diagonal, so tr R = 0
    and the trace equals tr G >= 0; BN on batch statistics divides by a standard deviation
    that depends on the weights, and then tr R can take either sign.

    tr G = sum_i sum_k s_ik ||J_i^T u_ik||^2 over the eigenpairs (s_ik, u_ik) of sample i's
    logit Hessian: one backward pass per sample and class.  Returns ``trace``, ``loss``
    (the mean cross-entropy) and ``backward_passes``.  Cross-entropy without label
    smoothing only; BN in ``bn_mode`` as for :class:`HessianOperator`.
    """
    batches = as_batches(batches)
    coords = coords if coords is not None else trainable_coordinates(model, masks)
    total = sum(int(y.shape[0]) for _, y in batches)
    trace, loss, passes = 0.0, 0.0, 0
    with bn_context(model, bn_mode):
        for x, y in batches:
            x, y = _to_model(model, x, y)
            logits = model(x)
            loss += float(F.cross_entropy(logits.detach(), y)) * (y.shape[0] / total)
            prob = torch.softmax(logits.detach().to(torch.float64), dim=1)
            for i in range(logits.shape[0]):
                curvature = (torch.diag(prob[i]) - torch.outer(prob[i], prob[i])) / total
                values, vectors = torch.linalg.eigh(curvature)
                floor = 1e-12 * float(values[-1])   # below: the null direction (1, ..., 1), up to round-off
                for value, vector in zip(values.tolist(), vectors.T):
                    if value <= floor:
                        continue
                    grads = torch.autograd.grad(logits[i] @ vector.to(logits.dtype), coords.params,
                                                retain_graph=True, allow_unused=True)
                    trace += value * float(coords.gather(grads).to(torch.float64).pow(2).sum())
                    passes += 1
    return {"trace": trace, "loss": loss, "backward_passes": passes}


def hessian_summary(model: nn.Module, batches: Batches, masks: Masks | None = None,
                    loss_fn: LossFn = F.cross_entropy, top_k: int = 5, tol: float = 1e-3,
                    trace_probes: int = 50, slq_probes: int = 5, lanczos_steps: int = 60,
                    generator: int = 0, bn_mode: str = DEFAULT_BN_MODE) -> dict:
    """Top eigenvalues, Hutchinson trace and SLQ density of one network, JSON-able.

    One call per (network, time point) for the pipeline; every estimator runs on the
    same operator (trainable unpruned coordinates, BN in ``bn_mode``, fixed ``batches``).
    ``bn_mode`` in the result is the canonical name (``"batch"`` or ``"running"``).
    """
    op = HessianOperator(model, batches, masks, loss_fn, bn_mode=bn_mode)
    top = top_eigenvalues(op, top_k, tol, generator=generator)
    trace = hutchinson_trace(op, trace_probes, generator=generator + 1)
    density = slq_density(op, slq_probes, lanczos_steps, generator=generator + 2)
    return {
        "dim": op.dim,
        "top_eigenvalues": [float(v) for v in top["eigenvalues"]],
        "trace": trace["trace"],
        "trace_stderr": trace["stderr"],
        "trace_per_coordinate": trace["trace"] / op.dim,
        "density_grid": density["grid"].tolist(),
        "density": density["density"].tolist(),
        "density_sigma": density["sigma"],
        "hvps": op.num_hvp,
        "seconds": op.seconds,
        "bn_mode": resolve_bn_mode(bn_mode),
    }
