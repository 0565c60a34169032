"""Video tokens and the two video masking strategies UI-JEPA contrasts (arXiv 2409.04081; V-JEPA's tubes).

    tubelet   (TOKENIZERS) non-overlapping tubelets of (pt frames x ph x pw pixels) of inputs [B, T, H, W] on a
              (T/pt) x (H/ph) x (W/pw) grid, axes ("time", "row", "col"), row-major (token index =
              (t * H' + r) * W' + c); a linear tubelet embedding with a Xavier init (as patch2d)
    temporal  (MASKS) UI-JEPA's temporal masking: whole time slices of the token grid (every token of the frames
              of a tubelet row) are the target; the context is every token of the other slices.  The share of
              slices masked is drawn per batch, uniform in `ratio` (clipped to 1 .. T'-1 slices), which slices
              per sample.
    tube      (MASKS) V-JEPA's tube masking: a set of spatial cells, the union of random `block` (rows x cols)
              spatial blocks, is masked in EVERY time slice; the context is the other cells at every time.  The
              share of cells masked is drawn per batch, uniform in `ratio` (clipped to 1 .. S-1 cells); blocks
              are added per sample until they cover that many cells, the last block's surplus cells are dropped
              at random (so every sample masks the same count: one [B, 1, Nt] target).

Both samplers mask the same share of tokens for the same `ratio`; they differ only in the geometry: temporal
masking hides time (what happened in the hidden frames must be inferred from before and after), tube masking
hides space (each visible cell's whole time course stays visible).  Context and targets are disjoint.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import model_validator
from torch import nn

from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, numpy_rng, random_subset
from baselines.ssl.tokenizers import TOKENIZERS, Tokenizer
from baselines.tasks.labeled import LabeledTask, labeled_task
from baselines.tasks.ranges import check_interval
from baselines.tasks.ui_video import VideoInput
from harness.registry import ComponentConfig

# ----------------------------------------------------------------------------------------------
# tubelets


def tubeletify(video: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """video [B, T, H, W] -> tubelets [B, N, pt*ph*pw], N = (T/pt)*(H/ph)*(W/pw), row-major over (t, r, c)."""
    pt, ph, pw = tubelet
    B, T, H, W = video.shape
    x = video.reshape(B, T // pt, pt, H // ph, ph, W // pw, pw)  # [B, T', pt, H', ph, W', pw]
    x = x.permute(0, 1, 3, 5, 2, 4, 6)  # [B, T', H', W', pt, ph, pw]
    return x.reshape(B, (T // pt) * (H // ph) * (W // pw), pt * ph * pw)  # [B, N, P]


class TubeletConfig(ComponentConfig):
    name: Literal["tubelet"] = "tubelet"
    tubelet: tuple[int, int, int] = (2, 4, 4)  # frames, rows, cols per token


class Tubelets(Tokenizer):
    def __init__(self, tubelet: tuple[int, int, int], spec: VideoInput, d_model: int) -> None:
        super().__init__()
        (T, (H, W)), (pt, ph, pw) = (spec.frames, spec.size), tubelet
        if min(tubelet) < 1 or T % pt or H % ph or W % pw:
            raise ValueError(f"tubelet {tubelet} must divide the {T} x {H} x {W} videos")
        self.tubelet = tubelet
        self.layout = Layout.grid(("time", "row", "col"), (T // pt, H // ph, W // pw))
        self.content_dim = pt * ph * pw
        self.embed = nn.Linear(self.content_dim, d_model)

    def forward(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.embed(tubeletify(inputs, self.tubelet))  # [B, N, D]

    def content(self, inputs: torch.Tensor, layout: Layout) -> torch.Tensor:
        return tubeletify(inputs, self.tubelet)  # [B, N, P]

    def init_embedding(self) -> None:
        nn.init.xavier_uniform_(self.embed.weight)


@TOKENIZERS.register("tubelet", TubeletConfig)
def build_tubelet(cfg: TubeletConfig, task: LabeledTask, d_model: int) -> Tubelets:
    task = labeled_task(task, "tokenizer tubelet")
    if not isinstance(task.input_spec, VideoInput):
        raise TypeError(f"tokenizer tubelet needs videos [B, T, H, W]; {type(task).__name__} has {type(task.input_spec).__name__}")
    return Tubelets(cfg.tubelet, task.input_spec, d_model)


# ----------------------------------------------------------------------------------------------
# temporal and tube masks


def video_grid(layout: Layout, user: str) -> tuple[int, int, int]:
    """(T', H', W') of a ("time", "row", "col") token grid, or a clear error."""
    if layout.axes != ("time", "row", "col"):
        raise ValueError(f"mask {user} needs a (time, row, col) token grid; the layout has axes {layout.axes}")
    return layout.grid_shape(3, f"mask {user}")


def masked_count(rng: np.random.Generator, ratio: tuple[float, float], n: int) -> int:
    """round(u * n), u uniform in `ratio`, clipped to 1 .. n - 1."""
    return min(max(round(rng.uniform(*ratio) * n), 1), n - 1)


def split_tokens(hidden: np.ndarray) -> Masks:
    """hidden [B, N] bool (the same count per row) -> context = the rest [B, Nc], one target block [B, 1, Nt]."""
    index = np.argsort(hidden, axis=1, kind="stable")  # visible first, each part in index order
    n_ctx = int((~hidden[0]).sum())
    context = torch.from_numpy(np.ascontiguousarray(index[:, :n_ctx])).long()
    targets = torch.from_numpy(np.ascontiguousarray(index[:, n_ctx:])).long().unsqueeze(1)
    return Masks(context=context, targets=targets)


class TemporalMaskConfig(ComponentConfig):
    name: Literal["temporal"] = "temporal"
    ratio: tuple[float, float] = (0.5, 0.75)  # share of the time slices masked (UI-JEPA: "fully masked frames")

    @model_validator(mode="after")
    def _check(self) -> TemporalMaskConfig:
        check_interval("ratio", self.ratio, 0.0, 1.0)
        return self


class TemporalSampler:
    overlap = False

    def __init__(self, cfg: TemporalMaskConfig, layout: Layout) -> None:
        self.cfg, self.shape = cfg, video_grid(layout, "temporal")
        if self.shape[0] < 2:
            raise ValueError(f"mask temporal needs at least 2 time slices, the token grid has {self.shape[0]}")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        T, H, W = self.shape
        rng = numpy_rng(generator)
        slices = random_subset(rng, np.ones((batch_size, T), dtype=bool), masked_count(rng, self.cfg.ratio, T)).numpy()
        hidden_t = np.zeros((batch_size, T), dtype=bool)
        np.put_along_axis(hidden_t, slices, True, axis=1)  # [B, T']
        return split_tokens(np.repeat(hidden_t, H * W, axis=1))  # [B, T'*H'*W']: a slice's tokens are contiguous


MASKS.register("temporal", TemporalMaskConfig)(TemporalSampler)


class TubeMaskConfig(ComponentConfig):
    name: Literal["tube"] = "tube"
    ratio: tuple[float, float] = (0.5, 0.75)  # share of the spatial cells masked (at every time)
    block: tuple[int, int] = (2, 2)  # rows x cols of one spatial block

    @model_validator(mode="after")
    def _check(self) -> TubeMaskConfig:
        check_interval("ratio", self.ratio, 0.0, 1.0)
        if min(self.block) < 1:
            raise ValueError(f"block must be >= 1 x 1, got {self.block}")
        return self


class TubeSampler:
    overlap = False

    def __init__(self, cfg: TubeMaskConfig, layout: Layout) -> None:
        self.cfg, self.shape = cfg, video_grid(layout, "tube")
        _, H, W = self.shape
        if H * W < 2 or cfg.block[0] > H or cfg.block[1] > W:
            raise ValueError(f"mask tube: block {cfg.block} does not fit the {H} x {W} spatial grid (or it has 1 cell)")

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        T, H, W = self.shape
        (bh, bw), rng = self.cfg.block, numpy_rng(generator)
        count = masked_count(rng, self.cfg.ratio, H * W)
        cells = np.zeros((batch_size, H, W), dtype=bool)
        for row in cells:  # [H, W]: blocks until `count` cells are covered
            while row.sum() < count:
                top, left = rng.integers(0, H - bh + 1), rng.integers(0, W - bw + 1)
                before = row.copy()
                row[top:top + bh, left:left + bw] = True
                surplus = int(row.sum()) - count
                if surplus > 0:  # drop the newest block's surplus cells at random
                    new = np.flatnonzero(row & ~before)
                    row.flat[rng.choice(new, size=surplus, replace=False)] = False
        hidden = np.tile(cells.reshape(batch_size, H * W), (1, T))  # [B, T'*H'*W']: the same cells at every time
        return split_tokens(hidden)


MASKS.register("tube", TubeMaskConfig)(TubeSampler)
