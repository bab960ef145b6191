"""Pure-PyTorch rasterizer with nvdiffrast's three primitives and its exact conventions.

Works on any device and dtype (float32 or float64), so it runs the tests and the CPU path.

- ``rasterize``: hard z-buffer (nearest z/w wins, ties to the lower triangle id) over
  per-triangle bounding boxes; the barycentrics (u, v) are computed from clip-space
  positions with nvdiffrast's formula, so they carry gradients to ``pos``.
- ``interpolate``: attr = u * a0 + v * a1 + (1 - u - v) * a2 (perspective correct).
- ``antialias``: nvdiffrast's analytic silhouette antialiasing (Laine et al. 2020): for each
  horizontal / vertical pixel pair with different triangles, a silhouette edge of the nearer
  triangle crossing between the two centres blends one pixel towards the other by the
  crossing distance, which is differentiable in the edge's vertex positions.

Pixel (row r, column c) samples NDC ((2c + 1) / W - 1, (2r + 1) / H - 1), as in nvdiffrast.
Unlike nvdiffrast the torch backend does not clip triangles against the near plane: a
triangle with a vertex at w <= 0 is dropped (pixels with z/w outside [-1, 1] are dropped too).
"""

from __future__ import annotations

import torch
from torch import Tensor

_EMPTY = torch.iinfo(torch.int64).max
_AA_EPS = 0.0625  # nvdiffrast: expect no more than 1/16 pixel inaccuracy


def rasterize(pos: Tensor, tri: Tensor, resolution: tuple[int, int], *,
              max_pairs: int = 1 << 22) -> tuple[Tensor, None]:
    """(B, N, 4) clip-space positions, (F, 3) int triangles -> ((B, H, W, 4) rast, None).

    rast channels: u, v (differentiable in ``pos``), z/w, triangle id + 1 (0 = empty).
    ``max_pairs`` bounds the (triangle, pixel) candidates held in memory at once.
    """
    H, W = int(resolution[0]), int(resolution[1])
    tri = tri.long()
    with torch.no_grad():
        tri_id = _visible_triangles(pos.detach(), tri, H, W, max_pairs)
    return _rast_output(pos, tri, tri_id, H, W), None


def _visible_triangles(pos: Tensor, tri: Tensor, H: int, W: int, max_pairs: int) -> Tensor:
    """(B*H*W,) index of the nearest covering triangle per pixel, -1 where empty."""
    B, F = pos.shape[0], tri.shape[0]
    v = pos.float()[:, tri]                                   # (B, F, 3, 4)
    w = v[..., 3]
    ok = (w > 0).all(-1) & torch.isfinite(v).all(-1).all(-1)  # (B, F)
    w = torch.where(ok[..., None], w, torch.ones_like(w))
    sx = (v[..., 0] / w + 1) * (W / 2)                        # pixel-space x, centre c + 0.5
    sy = (v[..., 1] / w + 1) * (H / 2)
    x0 = torch.ceil(sx.amin(-1) - 0.5).clamp(0, W).long()
    x1 = torch.floor(sx.amax(-1) - 0.5).clamp(-1, W - 1).long()
    y0 = torch.ceil(sy.amin(-1) - 0.5).clamp(0, H).long()
    y1 = torch.floor(sy.amax(-1) - 0.5).clamp(-1, H - 1).long()
    nx, ny = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    count = torch.where(ok, nx * ny, 0).flatten()             # (B*F,)
    keep = count.nonzero()[:, 0]
    # per-triangle table: screen x, y (3 each), 1/w (3), z/w (3)
    table = torch.cat([sx, sy, 1 / w, v[..., 2] / w], -1).flatten(0, 1)[keep]
    count, nx, x0, y0 = count[keep], nx.flatten()[keep], x0.flatten()[keep], y0.flatten()[keep]
    batch, face = keep // F, keep % F
    best = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=pos.device)
    ends = count.cumsum(0)
    start = 0
    while start < len(count):
        # the largest run of triangles whose pairs fit in max_pairs (at least one triangle)
        base = ends[start - 1] if start else ends.new_zeros(())
        stop = int(torch.searchsorted(ends, base + max_pairs, right=True))
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        _scatter_nearest(best, table[sl], count[sl], nx[sl], x0[sl], y0[sl], batch[sl],
                         face[sl], H, W)
        start = stop
    found = best != _EMPTY
    return torch.where(found, best & 0xFFFFFFFF, -1)


def _scatter_nearest(best: Tensor, table: Tensor, count: Tensor, nx: Tensor, x0: Tensor,
                     y0: Tensor, batch: Tensor, face: Tensor, H: int, W: int) -> None:
    """Z-test every (triangle, pixel) pair of a run of triangles into ``best`` (in place)."""
    owner = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    local = torch.arange(len(owner), device=count.device) - (count.cumsum(0) - count)[owner]
    px = x0[owner] + local % nx[owner]
    py = y0[owner] + local // nx[owner]
    t = table[owner]                                          # (P, 12)
    X, Y = px.to(t.dtype) + 0.5, py.to(t.dtype) + 0.5
    dx, dy = t[:, 0:3] - X[:, None], t[:, 3:6] - Y[:, None]
    e0 = dx[:, 1] * dy[:, 2] - dy[:, 1] * dx[:, 2]
    e1 = dx[:, 2] * dy[:, 0] - dy[:, 2] * dx[:, 0]
    e2 = dx[:, 0] * dy[:, 1] - dy[:, 0] * dx[:, 1]
    s = e0 + e1 + e2
    sgn = torch.sign(s)
    inside = (e0 * sgn >= 0) & (e1 * sgn >= 0) & (e2 * sgn >= 0) & (s != 0)
    lam = torch.stack([e0, e1, e2], -1) / torch.where(s == 0, 1.0, s)[:, None]
    inv_w = (lam * t[:, 6:9]).sum(-1)
    zw = (lam * t[:, 9:12]).sum(-1)
    inside &= (zw >= -1) & (zw <= 1) & (inv_w > 0)
    depth = (1 / inv_w[inside]).float()                       # camera w: positive, monotone bits
    key = (depth.view(torch.int32).long() << 32) | face[owner[inside]]
    pix = (batch[owner[inside]] * H + py[inside]) * W + px[inside]
    best.scatter_reduce_(0, pix, key, reduce="amin")


def _rast_output(pos: Tensor, tri: Tensor, tri_id: Tensor, H: int, W: int) -> Tensor:
    """nvdiffrast's rasterizer output from the winning triangle per pixel (differentiable u, v)."""
    B = pos.shape[0]
    idx = (tri_id >= 0).nonzero()[:, 0]
    t = tri_id[idx]
    b = idx // (H * W)
    r, c = (idx // W) % H, idx % W
    p = pos[b[:, None], tri[t]]                               # (K, 3, 4)
    fx = (2 * c + 1).to(pos.dtype) / W - 1
    fy = (2 * r + 1).to(pos.dtype) / H - 1
    px = p[..., 0] - fx[:, None] * p[..., 3]
    py = p[..., 1] - fy[:, None] * p[..., 3]
    a0 = px[:, 1] * py[:, 2] - py[:, 1] * px[:, 2]
    a1 = px[:, 2] * py[:, 0] - py[:, 2] * px[:, 0]
    a2 = px[:, 0] * py[:, 1] - py[:, 0] * px[:, 1]
    at = a0 + a1 + a2
    iw = 1 / (at + torch.where(at < 0, -1e-6, 1e-6) * (at.abs() < 1e-6))
    b0, b1 = a0 * iw, a1 * iw
    with torch.no_grad():  # nvdiffrast's clamps, passed straight through in the backward
        c0, c1 = b0.clamp(0, 1), b1.clamp(0, 1)
        scale = 1 / torch.clamp(c0 + c1, min=1)
        a = torch.stack([a0, a1, a2], -1)
        zw = ((p[..., 2] * a).sum(-1) / (p[..., 3] * a).sum(-1)).clamp(-1, 1)
    b0 = b0 + (c0 * scale - b0).detach()
    b1 = b1 + (c1 * scale - b1).detach()
    vals = torch.stack([b0, b1, zw, (t + 1).to(pos.dtype)], -1)
    out = pos.new_zeros(B * H * W, 4).index_put((idx,), vals)
    return out.reshape(B, H, W, 4)


def interpolate(attr: Tensor, rast: Tensor, tri: Tensor) -> Tensor:
    """(N, C) or (B, N, C) vertex attributes -> (B, H, W, C) per pixel (0 where empty).

    Differentiable in ``attr`` and in ``rast``'s (u, v) (and so in the positions).
    """
    B, H, W, _ = rast.shape
    flat = rast.reshape(-1, 4)
    tid = flat[:, 3].detach().round().long() - 1
    idx = (tid >= 0).nonzero()[:, 0]
    vi = tri.long()[tid[idx]]                                 # (K, 3)
    if attr.dim() == 2:
        a = attr[vi]
    else:
        b = idx // (H * W) if attr.shape[0] > 1 else torch.zeros_like(idx)
        a = attr[b[:, None], vi]                              # (K, 3, C)
    u, v = flat[idx, 0:1], flat[idx, 1:2]
    vals = u * a[:, 0] + v * a[:, 1] + (1 - u - v) * a[:, 2]
    out = attr.new_zeros(B * H * W, attr.shape[-1]).index_put((idx,), vals.to(attr.dtype))
    return out.reshape(B, H, W, -1)


def opposite_vertices(tri: Tensor) -> Tensor:
    """(F, 3) triangles -> (F, 3) the vertex across edge i (v[i+1], v[i+2]), -1 on a boundary.

    Edges shared by more than two triangles pair up in sorted order (as arbitrary as
    nvdiffrast's hash for non-manifold meshes).
    """
    tri = tri.long()
    F = tri.shape[0]
    a, b = tri[:, [1, 2, 0]], tri[:, [2, 0, 1]]
    lo, hi = torch.minimum(a, b).flatten(), torch.maximum(a, b).flatten()
    key = lo * (int(tri.max()) + 1 if F else 1) + hi
    order = torch.argsort(key, stable=True)
    ks = key[order]
    opp = torch.full((F * 3,), -1, dtype=torch.long, device=tri.device)
    if F == 0:
        return opp.reshape(0, 3)
    same = ks[1:] == ks[:-1]
    # pair (k, k+1) when equal and k is the first of its pair
    first = same.clone()
    first[1:] &= ~first[:-1]  # greedy pairing along equal runs: (0,1), (2,3), ...
    i = order[:-1][first]
    j = order[1:][first]
    own = tri.flatten()
    opp[i] = own[j]
    opp[j] = own[i]
    return opp.reshape(F, 3)


def antialias(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor:
    """(B, H, W, C) colours -> antialiased colours, differentiable in ``color`` and ``pos``."""
    B, H, W, C = color.shape
    tid = rast[..., 3].detach().round().long() - 1            # (B, H, W)
    zw = rast[..., 2].detach()
    out = color.reshape(-1, C)
    flat = color.reshape(-1, C)
    opp_all = opposite_vertices(tri)
    tri = tri.long()
    for down in (0, 1):
        if down:
            diff = tid[:, :-1, :] != tid[:, 1:, :]
            b, py, px = diff.nonzero(as_tuple=True)
            step = W
        else:
            diff = tid[:, :, :-1] != tid[:, :, 1:]
            b, py, px = diff.nonzero(as_tuple=True)
            step = 1
        if len(b) == 0:
            continue
        pix0 = (b * H + py) * W + px
        pix1 = pix0 + step
        t0, t1 = tid.flatten()[pix0], tid.flatten()[pix1]
        z0, z1 = zw.flatten()[pix0], zw.flatten()[pix1]
        use1 = (t0 < 0) | ((t1 >= 0) & ~(z0 < z1))
        t = torch.where(use1, t1, t0)
        ds = torch.where(use1, -1.0, 1.0).to(pos.dtype)
        cx = px if down else px + use1.long()
        cy = py + use1.long() if down else py
        alpha, ok = _edge_alpha(pos, tri, opp_all, b, t, cx, cy, ds, H, W, bool(down))
        if not ok.any():
            continue
        alpha, p0, p1 = alpha[ok], pix0[ok], pix1[ok]
        target = torch.where(alpha > 0, p0, p1)
        delta = alpha[:, None].to(color.dtype) * (flat[p1] - flat[p0])
        out = out.index_add(0, target, delta)
    return out.reshape(B, H, W, C)


def _edge_alpha(pos: Tensor, tri: Tensor, opp_all: Tensor, b: Tensor, t: Tensor, cx: Tensor,
                cy: Tensor, ds: Tensor, H: int, W: int, down: bool) -> tuple[Tensor, Tensor]:
    """Blend weight (K,) and validity (K,) of each pixel-pair work item (nvdiffrast's analysis)."""
    vi, op = tri[t], opp_all[t]                               # (K, 3)
    p = pos[b[:, None], vi]                                   # (K, 3, 4)
    o = torch.where((op >= 0)[..., None], pos[b[:, None], op.clamp(min=0)], p)
    xh, yh = W / 2, H / 2
    fx = (cx.to(pos.dtype) + 0.5 - xh)[:, None]
    fy = (cy.to(pos.dtype) + 0.5 - yh)[:, None]
    x, y = p[..., 0] / p[..., 3] * xh - fx, p[..., 1] / p[..., 3] * yh - fy
    with torch.no_grad():
        ox, oy = o[..., 0] / o[..., 3] * xh - fx, o[..., 1] / o[..., 3] * yh - fy
        xd, yd = x.detach(), y.detach()
        bb = ((xd[:, 1] - xd[:, 0]) * (yd[:, 2] - yd[:, 0])
              - (xd[:, 2] - xd[:, 0]) * (yd[:, 1] - yd[:, 0]))
        wings = []
        for i in range(3):
            j, k = (i + 1) % 3, (i + 2) % 3
            wings.append((xd[:, j] - ox[:, i]) * (yd[:, k] - oy[:, i])
                         - (xd[:, k] - ox[:, i]) * (yd[:, j] - oy[:, i]))
        sil = torch.signbit(torch.stack(wings, -1)) == torch.signbit(bb)[:, None]  # (K, 3)
    if down:
        x, y = y, x
    nxt, prv = [1, 2, 0], [2, 0, 1]
    x1, y1, x2, y2 = x[:, nxt], y[:, nxt], x[:, prv], y[:, prv]  # edge i runs v[i+1] -> v[i+2]
    dx, dy = x2 - x1, y2 - y1
    num = ds[:, None] * (x1 * dy - y1 * dx)
    with torch.no_grad():
        crosses = (torch.signbit(y1) != torch.signbit(y2)) & (dy != 0)
        q = torch.where(crosses, num.detach() / torch.where(crosses, dy.detach(), 1.0),
                        float("-inf"))
        di = q.argmax(-1)
        rows = torch.arange(len(di), device=di.device)
        ok = (crosses[rows, di] & sil[rows, di]
              & (dy.detach()[rows, di].abs() >= dx.detach()[rows, di].abs()))
        qd = q[rows, di]
        ok &= (qd > -_AA_EPS) & (qd < 1 + _AA_EPS)
    dc = num[rows, di] / torch.where(ok, dy[rows, di], 1.0)
    dc = dc.clamp(0, 1)
    return ds * (0.5 - dc), ok
