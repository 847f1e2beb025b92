"""GP-GAN's blending solvers (gan_cli.blending): plain Poisson image editing (Perez et al. 2003) and the
Gaussian-Poisson equation (Wu et al. 2017), each against a direct sparse solve of its linear system built
pixel by pixel here, and the fixed points and invariants the equations promise."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.sparse import csc_matrix, lil_matrix
from scipy.sparse.linalg import spsolve

from gan_cli.blending import blend, gaussian_poisson, level_sizes, poisson_blend, pyramid
from gan_cli.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

HEIGHT, WIDTH = 8, 9


def random_case(channels: int = 2, seed: int = 0):
    """src, dst in [0, 1] and a random mask that touches the image's border."""
    rng = np.random.default_rng(seed)
    src, dst = rng.random((channels, HEIGHT, WIDTH)), rng.random((channels, HEIGHT, WIDTH))
    mask = rng.random((HEIGHT, WIDTH)) < 0.5
    mask[0, :3] = True
    return src, dst, mask


def neighbours(row: int, col: int, height: int, width: int):
    for d_row, d_col in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        if 0 <= row + d_row < height and 0 <= col + d_col < width:
            yield row + d_row, col + d_col


# --------------------------------------------------------------------------------------------------------
# Poisson image editing


def perez_reference(src, dst, mask):
    """Perez et al.'s Eq. (7) with v_pq = g_p - g_q, assembled pixel by pixel and solved by spsolve."""
    height, width = mask.shape
    unknowns = {pixel: i for i, pixel in enumerate(zip(*np.nonzero(mask)))}
    system, rhs = lil_matrix((len(unknowns), len(unknowns))), np.zeros((len(unknowns), src.shape[0]))
    for (row, col), i in unknowns.items():
        for q in neighbours(row, col, height, width):
            system[i, i] += 1
            rhs[i] += src[:, row, col] - src[:, q[0], q[1]]
            if mask[q]:
                system[i, unknowns[q]] -= 1
            else:
                rhs[i] += dst[:, q[0], q[1]]
    result = dst.copy()
    result[:, mask] = spsolve(system.tocsc(), rhs).T
    return result


def test_poisson_matches_a_direct_sparse_solve():
    src, dst, mask = random_case()
    np.testing.assert_allclose(poisson_blend(src, dst, mask, clip=False), perez_reference(src, dst, mask),
                               rtol=0, atol=1e-12)


def test_poisson_keeps_dst_outside_and_imports_the_source_gradients_inside():
    rng = np.random.default_rng(1)
    src, dst = rng.random((3, 12, 14)) * 0.5, rng.random((3, 12, 14))
    mask = np.zeros((12, 14), bool)
    mask[3:9, 2:11] = True
    mask[5, 11] = True
    # a boundary consistent with src: dst = src + 0.3 on the unmasked pixels next to the mask
    ring = np.zeros_like(mask)
    for row, col in zip(*np.nonzero(mask)):
        for q in neighbours(row, col, 12, 14):
            ring[q] = not mask[q]
    dst[:, ring] = src[:, ring] + 0.3
    result = poisson_blend(src, dst, mask)
    assert np.array_equal(result[:, ~mask], dst[:, ~mask])
    np.testing.assert_allclose(result[:, mask], src[:, mask] + 0.3, rtol=0, atol=1e-12)
    inner_h = mask[:, 1:] & mask[:, :-1]
    np.testing.assert_allclose(np.diff(result, axis=2)[:, inner_h], np.diff(src, axis=2)[:, inner_h], atol=1e-12)


def test_poisson_empty_and_full_masks():
    src, dst, _ = random_case()
    assert np.array_equal(poisson_blend(src, dst, np.zeros((HEIGHT, WIDTH), bool)), dst)
    assert np.array_equal(poisson_blend(src, dst, np.ones((HEIGHT, WIDTH))), src)


# --------------------------------------------------------------------------------------------------------
# the Gaussian-Poisson equation at one scale


def gp_reference(src, dst, mask, colour, beta, sigma, form):
    """The equation's matrices built pixel by pixel (G by scipy's gaussian_filter), solved by spsolve."""
    height, width = mask.shape
    n = height * width
    index = np.arange(n).reshape(height, width)
    laplacian = lil_matrix((n, n))
    divergence = np.zeros((src.shape[0], n))
    for row in range(height):
        for col in range(width):
            p = index[row, col]
            for q in neighbours(row, col, height, width):
                laplacian[p, p] -= 1
                laplacian[p, index[q]] += 1
                share = (int(mask[row, col]) + int(mask[q])) / 2  # the seam's edges take the mean of both gradients
                divergence[:, p] += share * (src[:, q[0], q[1]] - src[:, row, col])
                divergence[:, p] += (1 - share) * (dst[:, q[0], q[1]] - dst[:, row, col])
    laplacian = csc_matrix(laplacian)
    unit_images = np.eye(n).reshape(n, height, width)
    gauss = csc_matrix(np.stack([gaussian_filter(e, sigma, mode="reflect", truncate=4.0).ravel()
                                 for e in unit_images], axis=1))
    target = colour.reshape(colour.shape[0], n)
    if form == "paper":  # normal equations of ||L x - d||^2 + beta ||G x - G t||^2
        system = laplacian.T @ laplacian + beta * gauss.T @ gauss
        rhs = [laplacian.T @ d + beta * gauss.T @ (gauss @ t) for d, t in zip(divergence, target)]
    else:  # (-L + beta G) x = -d + beta G t
        system = beta * gauss - laplacian
        rhs = [beta * gauss @ t - d for d, t in zip(divergence, target)]
    return np.stack([spsolve(csc_matrix(system), b) for b in rhs]).reshape(colour.shape)


@pytest.mark.parametrize("form", ["paper", "authors"])
@pytest.mark.parametrize("beta, sigma", [(1.0, 0.5), (0.3, 1.0)])
def test_gaussian_poisson_matches_a_direct_sparse_solve(form, beta, sigma):
    src, dst, mask = random_case(seed=2)
    colour = np.random.default_rng(3).random(src.shape)
    result = gaussian_poisson(src, dst, mask, colour, levels=1, beta=beta, sigma=sigma, form=form, clip=False)
    np.testing.assert_allclose(result, gp_reference(src, dst, mask, colour, beta, sigma, form), rtol=0, atol=1e-11)


# --------------------------------------------------------------------------------------------------------
# the pyramid: fixed points


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_an_image_blended_with_itself_comes_back_exactly(form):
    rng = np.random.default_rng(4)
    image = rng.random((3, 37, 45))
    mask = rng.random((37, 45)) < 0.4
    low_res = pyramid(image, 3)[0]  # the image's own coarsest scale, 10 x 12
    result = gaussian_poisson(image, image, mask, low_res, levels=3, form=form)
    np.testing.assert_allclose(result, image, rtol=0, atol=1e-12)
    # float32 tensors: exact to float32's precision, and given back as float32 tensors
    result32 = gaussian_poisson(torch.from_numpy(image).float(), torch.from_numpy(image).float(),
                                torch.from_numpy(mask), torch.from_numpy(low_res).float(), form=form)
    assert result32.dtype == torch.float32 and result32.shape == (3, 37, 45)
    np.testing.assert_allclose(result32.numpy(), image, rtol=0, atol=1e-5)


def test_the_low_res_blends_colour_is_kept_with_the_composites_gradients():
    rng = np.random.default_rng(5)
    image = rng.random((2, 30, 26)) * 0.8
    mask = rng.random((30, 26)) < 0.5
    shifted = pyramid(image, 3)[0] + np.array([0.1, -0.05])[:, None, None]
    result = gaussian_poisson(image, image, mask, shifted, levels=3, clip=False)
    np.testing.assert_allclose(result, image + np.array([0.1, -0.05])[:, None, None], rtol=0, atol=1e-12)


def test_a_brighter_paste_of_the_same_scene_blends_back_into_it():
    rng = np.random.default_rng(6)
    scene = rng.random((3, 40, 36)) * 0.6
    brighter = scene + 0.3
    mask = np.zeros((40, 36), bool)
    mask[8:30, 10:27] = True
    composite_error = np.abs(np.where(mask, brighter, scene) - scene).max()
    result = gaussian_poisson(brighter, scene, mask, pyramid(scene, 3)[0], levels=3)
    assert composite_error == pytest.approx(0.3)
    np.testing.assert_allclose(result, scene, rtol=0, atol=1e-12)
    np.testing.assert_allclose(poisson_blend(brighter, scene, mask), scene, rtol=0, atol=1e-12)


def test_without_details_the_pyramid_still_keeps_a_smooth_image():
    # the authors' pyramid (colour = the upsampled coarser result only) is exact when upsampling is: a constant
    rows = np.full((1, 24, 20), 0.4)
    mask = np.zeros((24, 20), bool)
    mask[5:15, 4:12] = True
    result = gaussian_poisson(rows, rows, mask, np.full((1, 6, 5), 0.4), levels=3, details=False)
    np.testing.assert_allclose(result, rows, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------------
# settings, shapes, dtypes, errors


def test_level_sizes_follow_the_low_res_blend():
    assert level_sizes(256, 200, None, (64, 64)) == [(64, 50), (128, 100), (256, 200)]
    assert level_sizes(300, 300, None, (64, 64)) == [(38, 38), (75, 75), (150, 150), (300, 300)]
    assert level_sizes(37, 45, 3) == [(10, 12), (19, 23), (37, 45)]
    assert level_sizes(HEIGHT, WIDTH, None, (HEIGHT, WIDTH)) == [(HEIGHT, WIDTH)]


def test_defaults_are_the_authors():
    defaults = {name: p.default for name, p in inspect.signature(gaussian_poisson).parameters.items()}
    assert defaults["beta"] == 1.0 and defaults["sigma"] == 0.5 and defaults["levels"] is None


def test_shapes_and_dtypes_come_back_as_given():
    src, dst, mask = random_case(channels=1)
    flat = poisson_blend(src[0].astype(np.float32), dst[0].astype(np.float32), mask)
    assert isinstance(flat, np.ndarray) and flat.dtype == np.float32 and flat.shape == (HEIGHT, WIDTH)
    tensor = gaussian_poisson(torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(mask)[None],
                              torch.rand(1, 4, 4, dtype=torch.float64))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64 and tensor.shape == (1, HEIGHT, WIDTH)
    assert 0 <= tensor.min() and tensor.max() <= 1


def test_blend_falls_back_to_poisson_without_a_low_res_blend():
    src, dst, mask = random_case()
    assert np.array_equal(blend(src, dst, mask), poisson_blend(src, dst, mask))
    colour = np.full_like(src, 0.5)
    assert np.array_equal(blend(src, dst, mask, colour, beta=2.0, levels=1),
                          gaussian_poisson(src, dst, mask, colour, beta=2.0, levels=1))


@pytest.mark.parametrize("change, message", [
    (dict(dst=np.zeros((2, HEIGHT, WIDTH + 1))), "same channels and size"),
    (dict(mask=np.zeros((HEIGHT, WIDTH + 1))), "resize the mask"),
    (dict(mask=np.zeros((3, HEIGHT, WIDTH))), "one channel"),
    (dict(mask=np.full((HEIGHT, WIDTH), 0.5)), "binary"),
    (dict(src=np.zeros((2, HEIGHT, WIDTH), np.uint8)), "divide 8-bit images by 255"),
    (dict(low_res_blend=np.zeros((3, 4, 4))), "channels"),
    (dict(beta=0.0), "beta=0.0"),
    (dict(sigma=-1.0), "sigma=-1.0"),
    (dict(form="exact"), "form='exact'"),
    (dict(levels=4), "levels=4 is too many"),
])
def test_bad_inputs_are_user_errors(change, message):
    src, dst, mask = random_case()
    arguments = dict(src=src, dst=dst, mask=mask, low_res_blend=np.zeros((2, 4, 4))) | change
    with pytest.raises(UserError, match=message):
        gaussian_poisson(**arguments)
    if {"dst", "mask", "src"} & change.keys():
        del arguments["low_res_blend"]
        with pytest.raises(UserError, match=message):
            poisson_blend(**{k: v for k, v in arguments.items() if k in ("src", "dst", "mask")})
