"""The signal_jepa components: EEG lead-field mixing, the fMRI generator and its diffusion-map gradient, the
channel-conv tokenizer, channel_time positions, the spatial and spatiotemporal masks, S-JEPA's heads."""

import numpy as np
import pytest
import torch
import yaml

import baselines  # noqa: F401
from baselines.ssl.encoder import EncoderConfig, build_token_encoder
from baselines.ssl.heads import build_head
from baselines.ssl.layout import Layout
from baselines.ssl.masks import build_mask_sampler
from baselines.ssl.positions import SinCosConfig, build_positional
from baselines.ssl.predictors import ConcatPredictorConfig, build_predictor
from baselines.ssl.signal_heads import SignalHeadConfig
from baselines.ssl.signal_masks import SpatialMaskConfig, SpatiotemporalMaskConfig
from baselines.ssl.signal_tokens import ChannelConvConfig, ChannelTimeConfig
from baselines.tasks.signals import EEGConfig, EEGTask, fibonacci_hemisphere, lead_field
from baselines.tasks.signals_fmri import FMRIConfig, FMRITask, correlation, diffusion_map

torch.set_num_threads(1)
SMALL_EEG = EEGConfig(probe_train_size=64, probe_test_size=32)
SMALL_FMRI = FMRIConfig(probe_train_size=200, probe_test_size=32, gradient_subjects=100)


def eeg_layout(C: int = 16, t: int = 8) -> Layout:
    return Layout.grid(("channel", "time"), (C, t), positions=fibonacci_hemisphere(C).repeat_interleave(t, dim=0))


def test_lead_field_decays_with_distance_and_the_off_knob_is_identity_like():
    electrodes = fibonacci_hemisphere(16)  # [16, 3]
    sources = 0.85 * electrodes[[0, 5, 11]]  # right under electrodes 0, 5, 11
    L = lead_field(electrodes, sources, sigma=0.35, volume_conduction=True)  # [16, 3]
    dist = torch.cdist(electrodes, sources)
    for s in range(3):
        order = dist[:, s].argsort()
        assert torch.all(L[order, s][1:] <= L[order, s][:-1] + 1e-6)  # farther -> weaker
        assert L[order[0], s] == pytest.approx(1.0) and (L[:, s] > 0.2).sum() >= 3  # it reaches its neighbours
    off = lead_field(electrodes, sources, sigma=0.35, volume_conduction=False)
    assert torch.equal(off.sum(dim=0), torch.ones(3)) and set(off.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(off[[0, 5, 11]], torch.eye(3))  # each source on its own electrode only


def test_volume_conduction_correlates_neighbouring_channels():
    def neighbour_corr(volume_conduction: bool) -> float:
        task = EEGTask(SMALL_EEG.model_copy(update={"volume_conduction": volume_conduction}), seed=0)
        x = task.eval_splits()["train"].inputs  # [S, C, T]
        corr = correlation(x).abs().mean(0)  # [C, C]
        dist = torch.cdist(task.electrodes, task.electrodes)
        near = (dist > 0) & (dist < 0.6)
        return corr[near].mean().item()

    on, off = neighbour_corr(True), neighbour_corr(False)
    assert on > 0.4 and off < 0.2 and on > 2 * off


def test_eeg_splits_ssvep_peak_and_heldout_subjects():
    task = EEGTask(SMALL_EEG, seed=0)
    fit = task.eval_splits()["train"]
    assert fit.inputs.shape == (64, 16, 256) and task.n_classes == 4 and task.input_spec.attrs["positions"].shape == (16, 3)
    occipital = task.electrodes[:, 1].argmin()  # the most posterior electrode
    spec = torch.fft.rfft(fit.inputs[:, occipital], dim=1).abs()  # [S, T/2 + 1]
    freqs = torch.fft.rfftfreq(256, 1 / 64)
    hz = torch.tensor(SMALL_EEG.ssvep_hz)
    power_at = spec[:, torch.searchsorted(freqs, hz)]  # [S, 4]
    assert (power_at.argmax(dim=1) == fit.labels).float().mean() > 0.8
    again = EEGTask(SMALL_EEG, seed=5).eval_splits()["test"]
    assert torch.equal(again.inputs, task.eval_splits()["test"].inputs)  # fixed for every seed
    batch = next(task.train_batches(8, torch.Generator().manual_seed(0)))
    assert batch.inputs.shape == (8, 16, 256)


def test_diffusion_map_on_a_block_structured_matrix():
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.arange(3), [6, 8, 10])  # 24 regions in 3 blocks
    fc = np.where(blocks[:, None] == blocks[None, :], 0.8, 0.1) + 0.02 * rng.standard_normal((24, 24))
    fc = (fc + fc.T) / 2
    np.fill_diagonal(fc, 1.0)
    perm = rng.permutation(24)
    grad = diffusion_map(fc[np.ix_(perm, perm)], n_components=2, alpha=0.5, sparsity=0.5)  # [24, 2]
    labels = blocks[perm]
    means = np.stack([grad[labels == b].mean(0) for b in range(3)])  # [3, 2]
    within = max(grad[labels == b].std(0).max() for b in range(3))
    between = min(np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3))
    assert within < 0.05 * between  # the two leading gradients place every block at its own point
    again = diffusion_map(fc[np.ix_(perm, perm)], n_components=2, alpha=0.5, sparsity=0.5)
    assert np.array_equal(grad, again)  # signs fixed: deterministic


def test_fmri_label_in_the_coupling_and_gradient_follows_networks():
    task = FMRITask(SMALL_FMRI, seed=0)
    fit = task.eval_splits()["train"]
    assert fit.inputs.shape == (200, 24, 48) and task.input_spec.attrs["gradient"].shape == (24, 6)
    net = task.network
    a, b = fit.inputs[:, net == 0].mean(1), fit.inputs[:, net == 1].mean(1)  # [S, T] network means
    sign = (correlation(torch.stack([a, b], 1))[:, 0, 1] > 0).long()
    assert (sign == fit.labels).float().mean() > 0.8
    assert not torch.equal(net, net.sort().values)  # regions in a random order
    grad = task.gradient  # [R, k]: regions of one network close, of different networks apart
    d = torch.cdist(grad, grad)
    same = net[:, None] == net[None, :]
    assert d[same].mean() < 0.5 * d[~same].mean()
    sorted_task = FMRITask(SMALL_FMRI.model_copy(update={"shuffle_regions": False}), seed=0)
    assert torch.equal(sorted_task.network, sorted_task.network.sort().values)


def encoder(task, pos=None, d_model=32, **tok):
    cfg = EncoderConfig(name="token_encoder", tokenizer=ChannelConvConfig(**tok), pos=pos or ChannelTimeConfig(), d_model=d_model, n_layers=1, n_heads=4)
    return build_token_encoder(cfg, task)


def test_channel_conv_tokens_layout_and_content():
    task = EEGTask(SMALL_EEG, seed=0)
    enc = encoder(task)
    lay = enc.layout
    assert lay.axes == ("channel", "time") and lay.shape == (16, 8) and lay.attrs["positions"].shape == (128, 3)
    x = task.eval_splits()["train"].inputs[:4]  # [4, 16, 256]
    assert enc(x).shape == (4, 128, 32)
    content = enc.tokenizer.content(x, lay)  # [4, 128, 32]
    assert torch.equal(content[:, 3 * 8 + 2], x[:, 3, 64:96])  # token (channel 3, time 2) = its own samples
    assert enc.tokenizer.local(x[:, :4]).shape == (4, 4, 8, 32)
    with pytest.raises(ValueError, match="must divide"):
        encoder(task, layers=[(8, 6, 6)])


@pytest.mark.parametrize("pos", [ChannelTimeConfig(), ChannelTimeConfig(attr="gradient", encode="linear", spatial_share=0.5),
                                 ChannelTimeConfig(attr="positions", encode="linear", spatial_share=0.5)])
def test_channel_time_codes_tell_every_token_apart(pos):
    task = FMRITask(SMALL_FMRI, seed=0)
    lay = encoder(task, pos=pos, layers=[(32, 8, 8)]).layout
    table = build_positional(pos, 32, lay)(lay)  # [N, 32]
    assert table.shape == (lay.n_tokens, 32)
    assert torch.cdist(table, table).add(torch.eye(lay.n_tokens) * 1e3).min() > 1e-3  # no two tokens share a code
    assert table.abs().mean() > 0.1  # the spatial half keeps unit scale (not shrunk by the GPT-2 init)


@pytest.mark.parametrize("pos", [ChannelTimeConfig(), ChannelTimeConfig(encode="linear"), SinCosConfig()])
def test_no_target_query_without_its_position(pos):
    """The predictor's queries carry the target positions: the same context predicts differently at different
    targets (the S-JEPA third-party trainer's bug was queries without channel or time codes)."""
    lay = eeg_layout()
    torch.manual_seed(0)
    pred = build_predictor(ConcatPredictorConfig(d_model=24 if pos.name == "channel_time" else 16, n_layers=1), 32, 32, pos, lay)
    context = torch.randn(2, 40, 32)
    ctx_idx = torch.arange(40).expand(2, -1)
    a = pred(context, ctx_idx, torch.tensor([[[50, 60]], [[50, 60]]]), lay)  # [2, 1, 2, 32]
    b = pred(context, ctx_idx, torch.tensor([[[51, 70]], [[51, 70]]]), lay)
    assert (a - b).abs().amax(dim=-1).min() > 1e-4  # each target token's prediction moves with its position


def test_spatial_mask_is_a_ball_around_an_electrode_and_matches_the_random_arm():
    lay = eeg_layout()
    sampler = build_mask_sampler(SpatialMaskConfig(diameter=0.6), lay)
    masks = sampler(lay, 32, torch.Generator().manual_seed(0), 0.0)
    k = sampler.k
    e = fibonacci_hemisphere(16)
    dist = torch.arccos((e @ e.T).clamp(-1, 1))  # over the scalp
    for row in masks.targets[:, 0]:
        channels = (row // 8).unique()
        assert len(row) == k * 8 and len(channels) == k and torch.equal(row % 8, torch.arange(8).repeat(k))  # all time
        inside = torch.zeros(16, dtype=torch.bool).index_fill_(0, channels, True)
        # some electrode has every masked channel nearer than every kept one
        assert any(dist[c, inside].max() <= dist[c, ~inside].min() + 1e-6 for c in channels.tolist())
    suite = yaml.safe_load(open("suites/signal_jepa.yaml"))
    random_ratio = suite["when"][0]["set"]["method.mask.ratio"]
    assert sampler.target_share == pytest.approx(random_ratio)  # the random arm masks as many tokens
    assert build_mask_sampler(SpatialMaskConfig(diameter=0.8), lay).k > k > build_mask_sampler(SpatialMaskConfig(diameter=0.4), lay).k


def test_spatiotemporal_targets_are_cross_region_and_cross_time():
    R, t = 24, 6
    lay = Layout.grid(("channel", "time"), (R, t))
    sampler = build_mask_sampler(SpatiotemporalMaskConfig(), lay)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        masks = sampler(lay, 8, gen, 0.0)
        for ctx, tgt in zip(masks.context, masks.targets[:, 0], strict=True):
            regions, times = (ctx // t).unique(), (ctx % t).unique()
            assert len(ctx) == len(regions) * len(times)  # the context is a regions x window product
            assert torch.equal(times, torch.arange(times.min(), times.max() + 1))  # a contiguous window
            in_window = torch.isin(tgt % t, times)
            assert not torch.isin(tgt[in_window] // t, regions).any()  # alpha: other regions, inside the window
            assert (~in_window).any() or len(times) == t  # beta / gamma: outside the window
            outside_regions = tgt[~in_window] // t
            assert torch.isin(outside_regions, regions).any() and (~torch.isin(outside_regions, regions)).any()


@pytest.mark.parametrize("kind", ["contextual", "post_local", "pre_local"])
def test_signal_heads_train_only_their_own_layers(kind):
    task = EEGTask(SMALL_EEG, seed=0)
    enc = encoder(task).requires_grad_(False)
    head = build_head(SignalHeadConfig(name=kind), enc, 4, "mean")
    x = task.eval_splits()["train"].inputs[:4]
    out = head(enc, x)
    assert out.shape == (4, 4)
    out.sum().backward()
    assert head.spatial.grad is not None and head.spatial.grad.abs().sum() > 0
    assert sum(p.numel() for p in head.parameters()) == 4 * 16 + (4 * 8 * 32 + 1) * 4
