"""The UI-JEPA half of multimodal_jepa: the screen-recording generator's invariants (order-flipped pairs differ only
in order), tubelets, the temporal and tube masks' geometry, the intent decoder's teacher forcing and causality."""

import pytest
import torch

import baselines  # noqa: F401
from baselines.ssl.masks import build_mask_sampler
from baselines.ssl.text_decoder import TextDecoder, greedy, teacher_forcing, token_f1
from baselines.ssl.tokenizers import build_tokenizer
from baselines.ssl.video import TemporalMaskConfig, TubeletConfig, TubeMaskConfig, tubeletify
from baselines.tasks.ui_video import (
    BOS,
    EOS,
    PAD,
    PAIRS,
    UIVideoConfig,
    flipped,
    intent_text,
    is_ordered,
    render,
    steps_of,
)
from harness.components import TASKS

torch.set_num_threads(1)


def ui(**kw):
    return TASKS.get("synth_ui_video").build(UIVideoConfig(**{"probe_train_size": 72, "probe_test_size": 72, **kw}), 0)


def test_interface_determinism_and_subsets():
    task = ui()
    fit, test = task.eval_splits()["train"], task.eval_splits()["test"]
    assert fit.inputs.shape == (72, 8, 16, 16) and task.n_classes == 36 and task.texts.shape == (36, 8)
    a = next(task.train_batches(8, torch.Generator().manual_seed(3)))
    b = next(ui().train_batches(8, torch.Generator().manual_seed(3)))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    ordered = ui(eval_subset="ordered").eval_splits()
    assert is_ordered(ordered["test"].labels).all() and torch.equal(ordered["train"].labels, fit.labels)
    single = ui(eval_subset="single").eval_splits()["test"]
    assert not is_ordered(single.labels).any() and len(single) + len(ordered["test"]) == len(test)


def test_order_flipped_pairs_differ_only_in_order():
    """A two-step intent and its twin: the same app and buttons, texts that are permutations of each other, the
    same first and last frame (the final screen shows both buttons pressed, not in which order) but different
    middle frames."""
    n = 24
    labels = torch.tensor([a * 9 + k for a in range(4) for k in range(6)])  # every two-step intent
    twins = torch.tensor([flipped(int(y)) for y in labels])
    times = torch.tensor([[1, 4]] * n)
    shift, glow = torch.zeros(n, 2, dtype=torch.long), torch.full((n,), 0.8)
    a, b = render(labels, times, shift, glow, 8), render(twins, times, shift, glow, 8)
    for y, z in zip(labels.tolist(), twins.tolist()):
        (app_y, steps_y), (app_z, steps_z) = steps_of(y), steps_of(z)
        assert app_y == app_z and steps_y == steps_z[::-1] and steps_y != steps_z
        assert sorted(intent_text(y)) == sorted(intent_text(z)) and intent_text(y) != intent_text(z)
        assert flipped(z) == y
    assert torch.equal(a[:, 0], b[:, 0]) and torch.equal(a[:, -1], b[:, -1])
    assert (a[:, 1:6] != b[:, 1:6]).flatten(1).any(dim=1).all()
    with pytest.raises(ValueError, match="no order-flipped twin"):
        flipped(6)


def test_texts_spell_the_steps():
    assert intent_text(0) == [BOS, 3, 5, 4, 9, 4, 10, EOS] and PAIRS[0] == (0, 1)  # open app0 tap btn0 tap btn1
    assert intent_text(9 + 7) == [BOS, 3, 6, 4, 10, EOS, PAD, PAD]  # app1, one step: btn1


def test_tubelets_are_row_major_over_time_row_col():
    video = torch.arange(2 * 8 * 16 * 16, dtype=torch.float32).view(2, 8, 16, 16)
    tubes = tubeletify(video, (2, 4, 4))  # [2, 64, 32]
    assert tubes.shape == (2, 64, 32)
    t, r, c = 1, 2, 3
    assert torch.equal(tubes[1, (t * 4 + r) * 4 + c], video[1, 2 * t:2 * t + 2, 4 * r:4 * r + 4, 4 * c:4 * c + 4].flatten())
    tok = build_tokenizer(TubeletConfig(), ui(), 12)
    assert tok.layout.axes == ("time", "row", "col") and tok.layout.shape == (4, 4, 4)


@pytest.mark.parametrize("cfg", [TemporalMaskConfig(), TubeMaskConfig()], ids=["temporal", "tube"])
def test_video_masks_hide_whole_frames_or_whole_tubes(cfg):
    layout = build_tokenizer(TubeletConfig(), ui(), 12).layout
    sampler = build_mask_sampler(cfg, layout)
    gen = torch.Generator().manual_seed(0)
    time, cell = layout.coords[:, 0].long(), (layout.coords[:, 1] * 4 + layout.coords[:, 2]).long()  # [64]
    for _ in range(20):
        masks = sampler(layout, 16, gen, 0.0)
        assert masks.targets.shape[1] == 1 and 32 <= masks.targets.shape[2] <= 48  # 50-75% of the 64 tokens
        for ctx, tgt in zip(masks.context, masks.targets[:, 0]):
            assert len(set(ctx.tolist()) | set(tgt.tolist())) == 64 and not set(ctx.tolist()) & set(tgt.tolist())
            if cfg.name == "temporal":  # a hidden slice is hidden in every cell
                assert not set(time[ctx].tolist()) & set(time[tgt].tolist())
            else:  # a hidden cell is hidden at every time
                assert not set(cell[ctx].tolist()) & set(cell[tgt].tolist())


def decoder():
    torch.manual_seed(0)
    return TextDecoder(vocab_size=12, max_len=8, d_memory=12, d_model=16, n_layers=2, n_heads=4, d_ff=32).eval()


def test_teacher_forcing_shifts_by_one():
    texts = torch.tensor([intent_text(0), intent_text(16)])
    inputs, targets = teacher_forcing(texts)
    assert torch.equal(inputs, texts[:, :-1]) and torch.equal(targets, texts[:, 1:])
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # target t is input t + 1


def test_decoder_output_at_t_does_not_depend_on_later_tokens():
    dec, memory = decoder(), torch.randn(3, 5, 12)
    tokens = torch.randint(0, 12, (3, 7))
    out = dec(tokens, memory)  # [3, 7, 12]
    for t in range(6):
        changed = tokens.clone()
        changed[:, t + 1:] = torch.randint(0, 12, (3, 6 - t))
        after = dec(changed, memory)
        assert torch.allclose(out[:, :t + 1], after[:, :t + 1], atol=1e-6)  # causal: t sees tokens <= t only
        assert not torch.allclose(out[:, t + 1:], after[:, t + 1:], atol=1e-6)  # the later outputs do see them
    assert not torch.allclose(out, dec(tokens, torch.randn(3, 5, 12)), atol=1e-6)  # and it reads the memory


def test_greedy_agrees_with_the_teacher_forced_argmax():
    dec, memory = decoder(), torch.randn(4, 5, 12)
    gen = greedy(dec, memory, BOS, 8)  # [4, 8]
    assert (gen[:, 0] == BOS).all()
    step_argmax = dec(gen[:, :-1], memory).argmax(-1)  # [4, 7]: re-scoring the generation, teacher-forced
    assert torch.equal(step_argmax, gen[:, 1:])


def test_token_f1_is_order_blind():
    ref = torch.tensor([intent_text(0)] * 3)
    pred = torch.tensor([intent_text(0), intent_text(1), intent_text(6)])  # itself, its twin, a one-step intent
    f1 = token_f1(pred, ref, {PAD, BOS, EOS}, EOS)
    assert f1[0] == 1.0 and f1[1] == 1.0 and f1[2] == pytest.approx(0.8)  # 4 common of 4 and 6 content tokens
