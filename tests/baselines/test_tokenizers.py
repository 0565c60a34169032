"""Tokenizers, layouts and positional encodings of the SSL core: shapes, layouts, what each token holds."""

import pytest
import torch
from pydantic import ValidationError
from ssl_fakes import FakeImageTask

import baselines  # noqa: F401
from baselines.ssl.encoder import EncoderConfig, TokenEncoder, build_token_encoder
from baselines.ssl.layout import Layout
from baselines.ssl.positions import (
    POS_ENCODINGS,
    LearnedConfig,
    NoPositionConfig,
    SinCosConfig,
    build_positional,
    positions_at,
    sincos_1d,
)
from baselines.ssl.tokenizers import TOKENIZERS, FeaturesConfig, Patch2dConfig, build_tokenizer, patchify
from baselines.tasks.labeled import GridInput, LabeledBatch, TableInput

torch.set_num_threads(1)


class FakeTask:
    """Any input spec, two labelled splits of 10 zeros."""

    n_classes = 2

    def __init__(self, spec, shape):
        self.input_spec, self.shape = spec, shape

    def train_batches(self, batch_size, generator):
        raise NotImplementedError

    def eval_splits(self):
        return {s: LabeledBatch(torch.zeros(10, *self.shape), torch.zeros(10, dtype=torch.long)) for s in ("train", "test")}


SPECTRO = FakeTask(GridInput(1, (32, 64), ("freq", "time")), (1, 32, 64))
TABLE = FakeTask(TableInput((0, 3, 0, 5)), (4,))  # numeric, 3 categories, numeric, 5 categories


def test_layout_grid_is_row_major_and_validated():
    layout = Layout.grid(("freq", "time"), (2, 3))
    assert layout.n_tokens == 6 and not layout.per_sample and layout.shape == (2, 3)
    assert layout.coords.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]  # index = f * 3 + t
    assert layout.axis("time") == 1 and layout.grid_shape(2, "x") == (2, 3)
    with pytest.raises(ValueError, match="axes .* not 'row'"):
        layout.axis("row")
    with pytest.raises(ValueError, match="needs a 3-D grid"):
        layout.grid_shape(3, "mask tubes")
    with pytest.raises(ValueError, match="does not hold"):
        Layout(("x",), torch.zeros(5, 1), shape=(4,))
    points = Layout(("x", "y", "z"), torch.randn(2, 7, 3), attrs={"normal": torch.randn(2, 7, 3)})  # per sample
    assert points.per_sample and points.n_tokens == 7 and points.shape is None


def test_patch2d_on_images_and_on_spectrograms():
    images = build_tokenizer(Patch2dConfig(patch=(2, 2)), FakeImageTask(), 16)
    assert images.layout.axes == ("row", "col") and images.layout.shape == (4, 4) and images.content_dim == 4
    x = torch.randn(3, 1, 8, 8)
    assert images(x, images.layout).shape == (3, 16, 16)
    assert torch.equal(images.content(x, images.layout), patchify(x, 2))

    spectro = build_tokenizer(Patch2dConfig(patch=(4, 8)), SPECTRO, 16)  # 4 frequency bins x 8 frames
    assert spectro.layout.axes == ("freq", "time") and spectro.layout.shape == (8, 8) and spectro.content_dim == 32
    s = torch.randn(2, 1, 32, 64)
    content = spectro.content(s, spectro.layout)  # [2, 64, 32]
    assert content.shape == (2, 64, 32)
    assert torch.equal(content[0, 8 + 2].view(4, 8), s[0, 0, 4:8, 16:24])  # token (freq 1, time 2)
    with pytest.raises(ValueError, match="must divide the 32 x 64 inputs"):
        build_tokenizer(Patch2dConfig(patch=(5, 8)), SPECTRO, 16)
    with pytest.raises(TypeError, match="needs inputs on a 2-D grid"):
        build_tokenizer(Patch2dConfig(), TABLE, 16)


def test_feature_tokens_numeric_affine_and_categorical_embedding():
    tok = build_tokenizer(FeaturesConfig(), TABLE, 8)
    tok.init_embedding()
    assert tok.layout.axes == ("feature",) and tok.layout.shape == (4,) and tok.content_dim == 1
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0], [1.5, 0.0, 2.0, 0.0]])
    t = tok(x, tok.layout)  # [2, 4, 8]
    assert t.shape == (2, 4, 8)
    torch.testing.assert_close(t[0, 0], 0.5 * tok.weight[0] + tok.bias[0])  # numeric: weight_j x_j + bias_j
    torch.testing.assert_close(t[1, 2], 2.0 * tok.weight[2] + tok.bias[2])
    torch.testing.assert_close(t[0, 1], tok.bias[1] + tok.codes.weight[2])  # feature 1, code 2 (rows 0..2)
    torch.testing.assert_close(t[0, 3], tok.bias[3] + tok.codes.weight[3 + 4])  # feature 3, code 4 (rows 3..7)
    assert not torch.equal(t[1, 1], t[0, 1])  # another code, another embedding
    assert torch.equal(tok.content(x, tok.layout), x[..., None])
    with pytest.raises(TypeError, match="needs a table"):
        build_tokenizer(FeaturesConfig(), FakeImageTask(), 8)


def test_sincos_splits_the_width_over_the_axes():
    layout = Layout.grid(("freq", "time"), (3, 5))
    pe = build_positional(SinCosConfig(), 16, layout)(layout)  # [15, 16]
    grid = pe.view(3, 5, 16)
    assert torch.allclose(grid[:, :1, :8].expand(3, 5, 8), grid[:, :, :8])  # first half: frequency only
    assert torch.allclose(grid[:1, :, 8:].expand(3, 5, 8), grid[:, :, 8:])  # second half: time only
    torch.testing.assert_close(grid[2, 4, 8:], sincos_1d(torch.tensor([4.0]), 8)[0])
    features = Layout.grid(("feature",), (6,))
    code = build_positional(SinCosConfig(base=100.0), 8, features)(features)  # T-JEPA's feature-index code
    torch.testing.assert_close(code, sincos_1d(torch.arange(6.0), 8, base=100.0))
    with pytest.raises(ValueError, match="divisible by 4"):
        build_positional(SinCosConfig(), 6, layout)


def test_learned_none_and_per_sample_positions():
    layout = Layout.grid(("feature",), (5,))
    learned = build_positional(LearnedConfig(), 8, layout)
    assert learned(layout).shape == (5, 8) and learned.table.requires_grad
    assert torch.equal(build_positional(NoPositionConfig(), 8, layout)(layout), torch.zeros(5, 8))
    points = Layout(("x", "y"), torch.randn(3, 4, 2))  # per-sample coordinates
    pe = build_positional(SinCosConfig(), 8, points)(points)  # [3, 4, 8]
    assert pe.shape == (3, 4, 8) and not torch.allclose(pe[0], pe[1])
    idx = torch.tensor([[3, 0], [1, 1], [2, 0]])
    assert torch.equal(positions_at(pe, idx)[2, 0], pe[2, 2])  # per-sample gather
    with pytest.raises(ValueError, match="shared by the batch"):
        build_positional(LearnedConfig(), 8, points)
    assert POS_ENCODINGS.names() == ["center_mlp", "channel_time", "learned", "none", "sincos"]
    assert TOKENIZERS.names() == ["caption", "channel_conv", "features", "image_part", "patch2d", "point_groups", "tubelet"]


def test_token_encoder_on_a_table_with_reg_tokens():
    cfg = EncoderConfig(name="token_encoder", tokenizer={"name": "features"}, pos={"name": "sincos", "base": 100.0},
                        d_model=8, n_layers=1, n_heads=2, n_reg=2)
    enc = build_token_encoder(cfg, TABLE)
    assert isinstance(enc, TokenEncoder) and enc.layout.n_tokens == 4 and enc.reg.shape == (1, 2, 8)
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0], [1.5, 0.0, 2.0, 0.0]])
    out = enc(x)  # [REG] outputs dropped: one token per feature
    assert out.shape == (2, 4, 8)
    assert enc(x, keep=torch.tensor([[0, 3], [1, 2]])).shape == (2, 2, 8)
    with torch.no_grad():
        enc.reg.add_(torch.randn_like(enc.reg))  # the [REG] tokens are in every context: they change the features' tokens
    assert not torch.allclose(enc(x), out)
    with pytest.raises(ValidationError, match="unknown tokenizer 'pixels'"):
        EncoderConfig(name="token_encoder", tokenizer={"name": "pixels"})
