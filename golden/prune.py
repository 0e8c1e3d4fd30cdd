"""Deterministic magnitude pruning for the sparse formats (docs/spec.md section 4).

Every method is exact and reproducible: magnitudes and block norms are integers (int64), and
ties always go to the lower index, so hardware tests can rebuild the same sparse weights from a
seed.  Arrays with more than two dimensions (OIHW conv weights) are pruned as their
``(shape[0], prod(shape[1:]))`` matrix, the K order of spec section 2.2.
"""

from __future__ import annotations

import numpy as np

__all__ = ["prune", "PRUNE_METHODS"]

PRUNE_METHODS = ("unstructured", "block", "nm")


def _check_density(density, method):
    if density is None:
        raise ValueError(f"density must be given for method {method!r}")
    if isinstance(density, bool) or not isinstance(density, int | float | np.floating) \
            or not 0.0 <= float(density) <= 1.0:
        raise ValueError(f"density must be a number between 0 and 1, not {density!r}")
    return float(density)


def _keep_count(density: float, size: int) -> int:
    """``round(density * size)``, Python rounding (half to even)."""
    return int(round(density * size))


def _unstructured(W2, density):
    mag = np.abs(W2.astype(np.int64)).ravel()
    k = _keep_count(density, mag.size)
    order = np.argsort(-mag, kind="stable")  # stable: ties keep the lower flat index first
    mask = np.zeros(mag.size, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(W2.shape)


def _block(W2, density, b):
    rows, cols = W2.shape
    nbr, nbc = -(-rows // b), -(-cols // b)
    wp = np.zeros((nbr * b, nbc * b), dtype=np.int64)
    wp[:rows, :cols] = W2
    blocks = wp.reshape(nbr, b, nbc, b)
    norm2 = (blocks * blocks).sum(axis=(1, 3)).ravel()  # exact squared L2 norms
    real = np.zeros((nbr * b, nbc * b), dtype=np.int64)
    real[:rows, :cols] = 1
    sizes = real.reshape(nbr, b, nbc, b).sum(axis=(1, 3)).ravel()  # edge blocks are smaller
    target = _keep_count(density, W2.size)
    order = np.argsort(-norm2, kind="stable")
    reached = np.cumsum(sizes[order]) >= target
    nkeep = 0 if target == 0 else int(np.argmax(reached)) + 1
    keep = np.zeros(nbr * nbc, dtype=bool)
    keep[order[:nkeep]] = True
    mask = np.repeat(np.repeat(keep.reshape(nbr, nbc), b, axis=0), b, axis=1)
    return mask[:rows, :cols]


def _nm(W2, n, m):
    rows, cols = W2.shape
    ng = -(-cols // m)
    mag = np.full((rows, ng * m), -1, dtype=np.int64)  # padding ranks below any real element
    mag[:, :cols] = np.abs(W2.astype(np.int64))
    order = np.argsort(-mag.reshape(rows, ng, m), axis=-1, kind="stable")[..., :n]
    mask = np.zeros((rows, ng, m), dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask.reshape(rows, ng * m)[:, :cols]


def prune(W, method: str, *, density: float | None = None, block_size: int = 8, nm=(2, 4)
          ) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude-prune ``W`` so it fits a sparse format (docs/spec.md section 4).

    - ``unstructured``: keep the ``round(density * W.size)`` largest ``|w|`` (Python ``round``,
      half to even); ties go to the lower flat index.
    - ``block``: rank the ``B x B`` blocks (edge blocks may be smaller) by exact squared L2
      norm, ties to the lower row-major block index, and keep the shortest prefix of that ranking
      whose element count reaches ``round(density * W.size)``.
    - ``nm``: in each group of ``M`` consecutive elements of a row (the last group may be
      shorter), keep the ``N`` largest ``|w|``, ties to the lower index.

    The mask marks kept positions (a kept weight may itself be 0).

    Parameters
    ----------
    W : array_like of int, ndim >= 2
    method : {"unstructured", "block", "nm"}
    density : float in [0, 1]
        Kept fraction, for ``unstructured`` and ``block`` (must be None for ``nm``).
    block_size : int
        ``B`` for ``block`` (any int >= 1).
    nm : (int, int)
        ``(N, M)`` for ``nm``: ``M`` a power of two in 2..32, ``1 <= N <= M``.

    Returns
    -------
    W_pruned : numpy.ndarray
        Same shape and dtype as ``W``, zero outside the mask.
    mask : numpy.ndarray of bool
        Same shape, True where kept.

    Raises
    ------
    TypeError
        ``W`` is not an integer array.
    ValueError
        Unknown method, bad density, bad block size or N:M, ``W`` with fewer than 2 dims.
    """
    W = np.asarray(W)
    if W.dtype == bool or not np.issubdtype(W.dtype, np.integer):
        raise TypeError(f"W must be an integer array, not dtype {W.dtype}")
    if W.ndim < 2:
        raise ValueError(f"W must have at least 2 dimensions, not shape {W.shape!r}")
    if method not in PRUNE_METHODS:
        raise ValueError(f"method must be one of {PRUNE_METHODS}, not {method!r}")
    W2 = W.reshape(W.shape[0], -1)
    if method == "unstructured":
        mask = _unstructured(W2, _check_density(density, method))
    elif method == "block":
        if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer) \
                or block_size < 1:
            raise ValueError(f"block_size must be a positive int, not {block_size!r}")
        mask = _block(W2, _check_density(density, method), int(block_size))
    else:
        if density is not None:
            raise ValueError(f"density must be None for method 'nm' (N:M fixes it), "
                             f"not {density!r}")
        try:
            n, m = (int(v) for v in nm)
        except (TypeError, ValueError):
            raise ValueError(f"nm must be a pair (N, M), not {nm!r}") from None
        if m not in (2, 4, 8, 16, 32):
            raise ValueError(f"nm M must be a power of two in 2..32, not {m!r}")
        if not 1 <= n <= m:
            raise ValueError(f"nm N must be between 1 and M={m}, not {n!r}")
        mask = _nm(W2, n, m)
    mask = mask.reshape(W.shape)
    return np.where(mask, W, 0).astype(W.dtype), mask
