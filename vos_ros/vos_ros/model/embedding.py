"""The two embeddings of the paper and how they are matched against reference frames.

Global branch: every pixel of the current frame is matched against reference pixels (the
anchor frames globally, the previous frame inside a local window). The nearest foreground and
background similarities and a top-k vote over the reference labels are class-agnostic: their
cost does not depend on the number of objects.

Instance branch: one prototype per object pooled under its reference masks, related to the
other objects by attention, scored against every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

NO_MATCH = -1.0
# Most bytes of query-reference similarities held at once by match_global (the whole N x M
# matrix was some 115 MB per frame at 640x480 with the full config).
MATCH_CHUNK_BYTES = 16 * 1024 * 1024
# Fewest query pixels per chunk: thin products take other BLAS kernels (matrix-vector, small-matrix
# paths) whose rounding differs from the whole product's; at 256 rows and more the chunked
# results were bit-identical to the whole matrix's on DAVIS frames.
MIN_CHUNK_ROWS = 256


@dataclass
class MatchResult:
    """Per current pixel (N of them): nearest fg/bg similarity and top-k candidates."""

    fg_sim: torch.Tensor
    bg_sim: torch.Tensor
    cand_sim: torch.Tensor
    cand_probs: torch.Tensor

    # Dimension along which the fields of results for parts of the query pixels are joined.
    concat_dims: ClassVar[dict[str, int]] = {"fg_sim": 0, "bg_sim": 0, "cand_sim": 0, "cand_probs": 1}


class EmbeddingHead(nn.Module):
    """Per-pixel embedding at stride 8 from the stride 8 and stride 16 backbone features."""

    def __init__(self, ch8: int, ch16: int, hidden: int, out: int):
        super().__init__()
        self.proj8 = nn.Conv2d(ch8, hidden, 1)
        self.proj16 = nn.Conv2d(ch16, hidden, 1)
        self.mix = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(hidden, out, 1)

    def forward(self, f8: torch.Tensor, f16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (L2-normalised embedding, hidden features), both at stride 8."""
        up = F.interpolate(self.proj16(f16), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        hidden = self.mix(self.proj8(f8) + up)
        return F.normalize(self.out(hidden), dim=1), hidden


def backbone_embedding(f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
    """Training-free embedding: L2-normalised backbone features of strides 8 and 16, stacked."""
    up = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
    return F.normalize(torch.cat([F.normalize(f8, dim=1), F.normalize(up, dim=1)], dim=1), dim=1)


def match_global(
    query: torch.Tensor,
    keys: torch.Tensor,
    probs: torch.Tensor,
    num_fg: int,
    topk: int,
    chunk_bytes: int | None = None,
) -> MatchResult:
    """Match query pixels [C, N] against reference pixels [C, M] sorted foreground first.

    ``probs`` [K+1, M] are the reference soft labels; the first ``num_fg`` columns are the
    foreground pixels (any object), the rest background. The N x M similarity matrix is never
    held whole: query pixels go in chunks of at least MIN_CHUNK_ROWS whose similarities take about
    ``chunk_bytes`` (default MATCH_CHUNK_BYTES). Every result is per query pixel, so chunks change
    nothing but the BLAS call shapes. Autograd works through the chunks as through the whole.
    """
    budget = MATCH_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    rows = max(MIN_CHUNK_ROWS, budget // max(1, keys.shape[1] * keys.element_size()))
    fg, bg = slice(None, num_fg), slice(num_fg, None)
    return match_global_split(query, keys[:, fg], keys[:, bg], probs[:, fg], probs[:, bg], topk, chunk=rows)


def _top(sim: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``topk`` (or all) similarities per row and their column, NO_MATCH for an empty set."""
    if sim.shape[1] == 0:
        return sim.new_full((sim.shape[0], 1), NO_MATCH), None
    return sim.topk(min(topk, sim.shape[1]), dim=1)


def match_global_split(
    query: torch.Tensor,
    fg_keys: torch.Tensor,
    bg_keys: torch.Tensor,
    fg_probs: torch.Tensor,
    bg_probs: torch.Tensor,
    topk: int,
    chunk: int | None = None,
) -> MatchResult:
    """Match query pixels [C, N] against foreground [C, Mf] and background [C, Mb] reference pixels.

    The nearest foreground (background) similarity is the best of the foreground (background)
    top-k, and the overall top-k is the best of both: one pass over each similarity matrix.
    ``chunk`` query pixels are matched at a time (None: all at once), which bounds the memory
    of the similarity matrix; the result does not depend on it.
    """
    if chunk is not None and query.shape[1] > chunk:
        parts = [
            match_global_split(query[:, i : i + chunk], fg_keys, bg_keys, fg_probs, bg_probs, topk)
            for i in range(0, query.shape[1], chunk)
        ]
        return MatchResult(
            *(torch.cat([getattr(p, f) for p in parts], dim=d) for f, d in MatchResult.concat_dims.items())
        )
    rows = query.t()
    fg_top, fg_index = _top(rows @ fg_keys, topk)
    bg_top, bg_index = _top(rows @ bg_keys, topk)
    fg_sim, bg_sim = fg_top[:, 0], bg_top[:, 0]
    if fg_index is None and bg_index is None:
        return MatchResult(fg_sim, bg_sim, fg_top[:, :0], fg_probs.new_zeros((fg_probs.shape[0], rows.shape[0], 0)))
    if fg_index is None or bg_index is None:
        only_fg = bg_index is None
        cand_sim, index = (fg_top, fg_index) if only_fg else (bg_top, bg_index)
        return MatchResult(fg_sim, bg_sim, cand_sim, (fg_probs if only_fg else bg_probs)[:, index])
    cand_sim, pick = torch.cat([fg_top, bg_top], dim=1).topk(min(topk, fg_top.shape[1] + bg_top.shape[1]), dim=1)
    cand_probs = torch.cat([fg_probs[:, fg_index], bg_probs[:, bg_index]], dim=2)
    cand_probs = cand_probs.gather(2, pick[None].expand(cand_probs.shape[0], -1, -1))
    return MatchResult(fg_sim, bg_sim, cand_sim, cand_probs)


def _tiles(x: torch.Tensor, tile: int) -> torch.Tensor:
    """[C, H, W] (H, W multiples of ``tile``) -> [tiles, tile*tile, C], tiles in row-major order."""
    channels, height, width = x.shape
    x = x.view(channels, height // tile, tile, width // tile, tile)
    return x.permute(1, 3, 2, 4, 0).reshape(-1, tile * tile, channels)


def _regions(x: torch.Tensor, tile: int, radius: int) -> torch.Tensor:
    """[C, H, W] -> [tiles, C, R*R]: each tile's neighbourhood (R = tile + 2 radius), zero outside."""
    padded = F.pad(x[None], (radius, radius, radius, radius))
    size = tile + 2 * radius
    return F.unfold(padded, size, stride=tile)[0].view(x.shape[0], size * size, -1).permute(2, 0, 1)


def _untile(x: torch.Tensor, tiles_y: int, tiles_x: int, tile: int, height: int, width: int) -> torch.Tensor:
    """[tiles, tile*tile, X] -> [height*width, X] in pixel order."""
    extra = x.shape[-1]
    x = x.view(tiles_y, tiles_x, tile, tile, extra).permute(0, 2, 1, 3, 4)
    return x.reshape(tiles_y * tile, tiles_x * tile, extra)[:height, :width].reshape(height * width, extra)


def match_local(
    query: torch.Tensor, key: torch.Tensor, probs: torch.Tensor, radius: int, topk: int, tile: int = 8
) -> MatchResult:
    """Match each query pixel [C, h, w] against the previous frame's pixels within ``radius``.

    Pixels are processed in tiles: one batched matrix product per tile against its
    neighbourhood, then each pixel's (2 radius + 1)^2 window is gathered from it.
    """
    height, width = (int(v) for v in query.shape[1:])  # constants when traced: a graph is made per size
    tiles_y, tiles_x = -(-height // tile), -(-width // tile)
    pad = (0, tiles_x * tile - width, 0, tiles_y * tile - height)
    fit = lambda m: F.pad(m, pad)  # noqa: E731
    region = tile + 2 * radius
    window = 2 * radius + 1
    local = torch.arange(tile, device=query.device)
    offsets = torch.arange(window, device=query.device)
    rows = (local[:, None, None, None] + offsets[None, None, :, None]) * region
    cols = local[None, :, None, None] + offsets[None, None, None, :]
    index = (rows + cols).view(tile * tile, window * window)

    sims_all = torch.bmm(_tiles(fit(query), tile), _regions(fit(key), tile, radius))
    sims = sims_all.gather(2, index.expand(sims_all.shape[0], -1, -1))
    inside = _regions(fit(torch.ones_like(probs[:1])), tile, radius)[:, 0, index] > 0.5
    foreground = _regions(fit(1.0 - probs[:1]), tile, radius)[:, 0, index] > 0.5
    sims = sims.masked_fill(~inside, NO_MATCH)
    fg_sim = sims.masked_fill(~foreground, NO_MATCH).amax(2, keepdim=True)
    bg_sim = sims.masked_fill(foreground | ~inside, NO_MATCH).amax(2, keepdim=True)
    cand_sim, cand_index = sims.topk(min(topk, window * window), dim=2)
    prob_regions = _regions(fit(probs), tile, radius)
    region_index = index.expand(sims.shape[0], -1, -1).gather(2, cand_index)
    classes = probs.shape[0]
    # One gather over each tile's region (the index, not the K+1 probability planes, is repeated per class).
    gathered = prob_regions.gather(2, region_index.flatten(1).unsqueeze(1).expand(-1, classes, -1))
    gathered = gathered.view(region_index.shape[0], classes, tile * tile, -1)
    cand_probs = _untile(gathered.permute(0, 2, 1, 3).flatten(2), tiles_y, tiles_x, tile, height, width)
    cand_probs = cand_probs.view(height * width, classes, -1).permute(1, 0, 2)
    untile = lambda t: _untile(t, tiles_y, tiles_x, tile, height, width)  # noqa: E731
    return MatchResult(untile(fg_sim)[:, 0], untile(bg_sim)[:, 0], untile(cand_sim), cand_probs)


def vote(matches: list[MatchResult], temperature: torch.Tensor | float) -> torch.Tensor:
    """Soft label vote [K+1, N] over the pooled top-k candidates of several matches."""
    sims = torch.cat([m.cand_sim for m in matches], dim=1)
    probs = torch.cat([m.cand_probs for m in matches], dim=2)
    weights = torch.softmax(sims / temperature, dim=1)
    return (probs * weights[None]).sum(2)


def pool_prototypes(embedding: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-weighted sums [K, C] of an embedding [C, h, w] under object probs [K+1, h, w], and weights [K]."""
    weights = probs[1:].flatten(1)
    return weights @ embedding.flatten(1).t(), weights.sum(1)


class PrototypeRelation(nn.Module):
    """Attention across the K object prototypes, so each object is described relative to the others."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, prototypes: torch.Tensor) -> torch.Tensor:
        """Prototypes [K, C] -> related, L2-normalised prototypes [K, C].

        Self-attention written out with the weights of ``self.attention`` (what
        nn.MultiheadAttention computes), with K left free so an exported graph takes any K.
        """
        attention = self.attention
        heads, dim = attention.num_heads, prototypes.shape[-1]
        q, k, v = F.linear(prototypes, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, heads, dim // heads).transpose(0, 1)

        mixed = F.scaled_dot_product_attention(split(q), split(k), split(v))
        related = attention.out_proj(mixed.transpose(0, 1).reshape(-1, dim))
        return F.normalize(self.norm(prototypes + related), dim=1)
