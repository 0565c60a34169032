"""The TI-JEPA half of multimodal_jepa: the captioned-image generator (the interaction subset needs both modalities,
the rest does not), the tokenizers of the packed rows, late fusion's features, and ti_jepa starting from frozen
pre-trained towers."""

import torch

import baselines  # noqa: F401
from baselines.methods.multimodal import PairJEPAConfig, TIJEPAConfig, build_pair, build_ti
from baselines.ssl.text_image import FusionConfig, TwoTowerConfig, build_ti_fusion, build_two_tower, image_of, words_of
from baselines.tasks.text_image import NEGATIVE, NEUTRAL, POSITIVE, WORDS, TextImageConfig, face
from harness.components import TASKS

torch.set_num_threads(1)


def ti(**kw):
    return TASKS.get("synth_text_image").build(TextImageConfig(**{"probe_train_size": 40, "probe_test_size": 400, **kw}), 0)


def mood_of(words: torch.Tensor) -> torch.Tensor:
    """The caption's mood word -> +1 positive, -1 negative, 0 neutral: [S]."""
    last = [WORDS[i] for i in words[:, -1].tolist()]
    return torch.tensor([1 if w in POSITIVE else -1 if w in NEGATIVE else 0 for w in last])


def smiles(images: torch.Tensor) -> torch.Tensor:
    """Whether each noise-free image's face smiles, read from the pixels (template match): [S] bool."""
    s, f = face(True), face(False)
    out = []
    for img in images[:, 0]:
        windows = img.unfold(0, 5, 1).unfold(1, 5, 1)  # [12, 12, 5, 5]
        err_s = ((windows - s) ** 2).sum(dim=(-1, -2)).min()
        err_f = ((windows - f) ** 2).sum(dim=(-1, -2)).min()
        out.append(bool(err_s < err_f))
    return torch.tensor(out)


def test_the_interaction_subset_needs_both_modalities():
    task = ti(noise=0.0, probe_test_size=2000)
    test = task.eval_splits()["test"]
    spec = task.input_spec
    mood, smiling, y = mood_of(words_of(test.inputs, spec)), smiles(image_of(test.inputs, spec)), test.labels
    polar = mood != 0
    assert 0.5 < polar.float().mean() < 0.7  # polar_share 0.6
    assert torch.equal(y[polar], ((mood[polar] > 0) != smiling[polar]).long())  # XOR of the two moods
    assert (y[~polar] == 0).all()  # neutral captions: the text alone decides
    for cell in ((True, 1), (True, -1), (False, 1), (False, -1)):  # each (face, mood) cell is constant ...
        sel = (smiling == cell[0]) & (mood == cell[1])
        assert sel.sum() > 50 and len(y[sel].unique()) == 1
    for part in (smiling[polar], mood[polar] > 0):  # ... but either modality alone leaves the label at a coin flip
        for v in (True, False):
            assert abs(y[polar][part == v].float().mean().item() - 0.5) < 0.08


def test_eval_subsets_and_determinism():
    full, inter, neutral = ti(), ti(eval_subset="interaction"), ti(eval_subset="neutral")
    n = len(full.eval_splits()["test"])
    assert len(inter.eval_splits()["test"]) + len(neutral.eval_splits()["test"]) == n
    assert (mood_of(words_of(inter.eval_splits()["test"].inputs, inter.input_spec)) != 0).all()
    assert torch.equal(inter.eval_splits()["train"].inputs, full.eval_splits()["train"].inputs)
    a = next(full.train_batches(8, torch.Generator().manual_seed(5)))
    b = next(ti().train_batches(8, torch.Generator().manual_seed(5)))
    assert torch.equal(a.inputs, b.inputs) and a.inputs.shape == (8, 256 + 5)
    assert set(WORDS[i] for i in words_of(a.inputs, full.input_spec)[:, -1].tolist()) <= set(POSITIVE + NEGATIVE + NEUTRAL)


def small_towers():
    tower = {"d_model": 8, "n_layers": 1, "n_heads": 2}
    return {"image": {"tokenizer": {"name": "image_part", "patch": [4, 4]}, **tower},
            "text": {"tokenizer": {"name": "caption"}, **tower}}


def pair_method(task):
    torch.manual_seed(0)
    model = build_two_tower(TwoTowerConfig(**small_towers()), task)
    small = {"predictor": {"name": "concat", "d_model": 8, "n_layers": 1, "n_heads": 2}}
    cfg = PairJEPAConfig(name="pair_jepa", image={"mask": {"name": "multiblock", "n_targets": 2}, **small},
                         text={"mask": {"name": "random", "ratio": 0.4}, **small})
    return build_pair(cfg, model, task)


def test_late_fusion_features_are_the_towers_means_side_by_side():
    task = ti()
    pair = pair_method(task)
    batch = task.eval_splits()["test"].slice(0, 6)
    pooled = pair.representation().pooled(batch)  # [6, 16]
    with torch.no_grad():
        zi, zt = pair.jepas["image"].target(batch.inputs), pair.jepas["text"].target(batch.inputs)  # [6, 16, 8], [6, 5, 8]
    assert torch.allclose(pooled[:, :8], zi.mean(1) * 16 / 21, atol=1e-6)
    assert torch.allclose(pooled[:, 8:], zt.mean(1) * 5 / 21, atol=1e-6)
    out = pair.loss(pair.collate(task.eval_splits()["train"].slice(0, 8), torch.Generator().manual_seed(0)))
    assert out.loss.requires_grad and {"image/target_std", "text/pred_std"} <= set(out.metrics)


def test_ti_jepa_starts_from_the_frozen_towers():
    task = ti()
    pair = pair_method(task)
    for p in pair.module.parameters():  # make the source's towers differ from a fresh init
        p.data.add_(0.1)
    fusion = build_ti_fusion(FusionConfig(**small_towers(), fusion_heads=2), task)
    method = build_ti(TIJEPAConfig(name="ti_jepa", predictor={"name": "concat", "d_model": 8, "n_layers": 1, "n_heads": 2},
                                   mask={"name": "multiblock", "n_targets": 2}), fusion, task)
    method.from_source(pair)
    for t in ("image", "text"):
        want = pair.jepas[t].target.state_dict()
        for enc in (method.encoder, method.target):
            got = getattr(enc, t).state_dict()
            assert all(torch.equal(got[k], want[k]) for k in want)
        assert not any(p.requires_grad for p in getattr(method.encoder, t).parameters())
    assert all(p.requires_grad for p in method.encoder.fusion.parameters())
    batch = method.collate(task.eval_splits()["train"].slice(0, 8), torch.Generator().manual_seed(0))
    method.loss(batch).loss.backward()
    assert method.encoder.fusion.layers[0].multihead_attn.in_proj_weight.grad.abs().sum() > 0  # text -> image trains
    without = build_ti_fusion(FusionConfig(**small_towers(), fusion_heads=2, use_text=False), task)
    x = task.eval_splits()["test"].inputs[:4]
    y = x.clone()
    y[:, 256:] = torch.tensor([float(WORDS.index(w)) for w in ("a", "big", "disc", "is", "sad")])
    assert torch.equal(without(x), without(y)) and not torch.equal(fusion(x), fusion(y))  # text removed: blind to it
