"""Plain Poisson image editing (Perez, Gangnet & Blake 2003, "Poisson Image Editing"), seamless cloning.

Inside the mask Omega the result f solves the paper's discrete Eq. (7) with the imported-gradient field of
Eq. (11), v_pq = g_p - g_q (g = src): for every pixel p in Omega,

    |N_p| f_p - sum_{q in N_p & Omega} f_q = sum_{q in N_p & dOmega} dst_q + sum_{q in N_p} (g_p - g_q),

N_p being p's 4-neighbours inside the image (so a mask touching the image's border has no flux through
it) and dOmega the unmasked pixels next to Omega (Dirichlet values from dst). Outside Omega, f = dst.
The mask's shape is arbitrary, so no transform diagonalises this system: it is one sparse LU
factorisation (scipy's SuperLU), shared by all channels.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

from gan_cli.blending.images import Image, give_back, read_image, read_mask, same_size

#: the 4-neighbourhood, as (row, column) offsets
NEIGHBOURS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def poisson_blend(src: Image, dst: Image, mask: Image, *, clip: bool = True) -> Image:
    """Seamless cloning of src's masked region into dst (images C x H x W or H x W, floats in [0, 1]).

    Pixels outside the mask are dst's exactly; `clip` limits the result to [0, 1]. An empty mask gives
    dst back; a mask that covers the whole image has no boundary to take values from and gives src back.
    """
    source, layout = read_image(src, "src")
    target, _ = read_image(dst, "dst")
    same_size(source, target, ("src", "dst"))
    inside = read_mask(mask, source.shape[1:])
    result = target.copy()
    if inside.all():
        result = source.copy()
    elif inside.any():
        result[:, inside] = _solve_inside(source, target, inside).T
    if clip:
        np.clip(result, 0.0, 1.0, out=result)
    return give_back(result, layout)


def _solve_inside(source: np.ndarray, target: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """f on the masked pixels (in row-major order), one column per channel, from Eq. (7)."""
    height, width = inside.shape
    count = int(inside.sum())
    index = np.full(inside.shape, -1)
    index[inside] = np.arange(count)
    rows_p, cols_p = np.nonzero(inside)
    degree = np.zeros(count)
    rhs = np.zeros((count, source.shape[0]))
    links: list[tuple[np.ndarray, np.ndarray]] = []
    for d_row, d_col in NEIGHBOURS:
        rows_q, cols_q = rows_p + d_row, cols_p + d_col
        exists = (rows_q >= 0) & (rows_q < height) & (cols_q >= 0) & (cols_q < width)
        p = index[rows_p[exists], cols_p[exists]]
        q_row, q_col = rows_q[exists], cols_q[exists]
        np.add.at(degree, p, 1.0)
        np.add.at(rhs, p, (source[:, rows_p[exists], cols_p[exists]] - source[:, q_row, q_col]).T)
        masked = inside[q_row, q_col]
        links.append((p[masked], index[q_row[masked], q_col[masked]]))
        np.add.at(rhs, p[~masked], target[:, q_row[~masked], q_col[~masked]].T)
    rows = np.concatenate([np.arange(count)] + [p for p, _ in links])
    cols = np.concatenate([np.arange(count)] + [q for _, q in links])
    values = np.concatenate([degree] + [-np.ones(len(p)) for p, _ in links])
    system = csc_matrix((values, (rows, cols)), shape=(count, count))
    return splu(system).solve(rhs)
