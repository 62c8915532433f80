"""Model construction and weight formats (method.md §2-3, §7): the official 246-key LL file, CLIP archives and state
dicts in fp32 and fp16, the official HL file (a CLIP ``visual`` state dict), strict loading."""
import copy
import warnings

import pytest
import torch
from conftest import RN50_ARGS, make_clip

from grepq.models.high_level import (
    HighLevelModel,
    build_clip,
    encode_image,
    load_clip,
    load_hl_visual_weights,
    text_embeddings,
)
from grepq.models.low_level import load_low_level, official_state_dict, save_low_level


def official_ll_file(model, path):
    torch.save({"model": {"state_dict": official_state_dict(model)}, "optimizer": {"state_dict": {}},
                "current_iteration": 123}, path)


def test_official_ll_layout_has_246_keys_and_loads_strictly(tmp_path, ll_model):
    sd = official_state_dict(ll_model)
    assert len(sd) == 246
    assert sum(k.startswith("encoder.base_model.") for k in sd) == 122
    assert sum(k.startswith("encoder.resnet18.") for k in sd) == 120
    official_ll_file(ll_model, tmp_path / "low_level_model_weights.tar")
    loaded, report = load_low_level(tmp_path / "low_level_model_weights.tar")
    assert "official" in report.format and len(report.unused) == 122
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), ll_model.eval()(x))
    assert loaded(x).shape == (2, 128)


def test_official_ll_missing_tensor_is_an_error(tmp_path, ll_model):
    sd = official_state_dict(ll_model)
    del sd["encoder.resnet18.7.1.bn2.running_var"]
    del sd["encoder.base_model.layer4.1.bn2.running_var"]
    torch.save({"model": {"state_dict": sd}}, tmp_path / "bad.tar")
    with pytest.raises(ValueError, match=r"bad.tar.*missing.*encoder.7.1.bn2.running_var"):
        load_low_level(tmp_path / "bad.tar")


def test_official_ll_inconsistent_twin_is_an_error(tmp_path, ll_model):
    sd = official_state_dict(ll_model)
    sd["encoder.base_model.conv1.weight"] = sd["encoder.base_model.conv1.weight"] + 1
    torch.save({"model": {"state_dict": sd}}, tmp_path / "twin.tar")
    with pytest.raises(ValueError, match="differs from its twin"):
        load_low_level(tmp_path / "twin.tar")


def test_grepq_ll_checkpoint_round_trip(tmp_path, ll_model):
    save_low_level(ll_model, tmp_path / "ll.pt")
    loaded, report = load_low_level(tmp_path / "ll.pt")
    assert report.format == "grepq low-level checkpoint"
    for k, v in ll_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    save_low_level(ll_model, tmp_path / "official.tar", fmt="official")
    again, _ = load_low_level(tmp_path / "official.tar")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in ll_model.state_dict().items())


def test_ll_not_a_checkpoint(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="x.tar"):
        load_low_level(tmp_path / "x.tar")
    with pytest.raises(FileNotFoundError, match="nope.tar"):
        load_low_level(tmp_path / "nope.tar")


def test_ll_model_matches_official_structure_forward(ll_model):
    """Official forward: resnet18 children without fc, squeeze, then the MLP head."""
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        feat = ll_model.encoder(x).squeeze(-1).squeeze(-1)
        expect = ll_model.head[2](torch.relu(ll_model.head[0](feat)))
        assert torch.allclose(ll_model(x), expect, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# CLIP


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_clip_torchscript_and_state_dict(clip_files, small_clip):
    for kind in ("jit", "state_dict"):
        m = load_clip(clip_files[kind])
        assert same_weights(m, small_clip), kind
        assert all(p.dtype == torch.float32 for p in m.parameters())


def test_build_clip_keeps_fp32_values_exactly(small_clip):
    sd = {k: v.clone() for k, v in small_clip.state_dict().items()}
    sd["visual.conv1.weight"] += 1e-7  # not representable in fp16: would be rounded by clip.model.build_model
    m = build_clip(sd)
    assert torch.equal(m.state_dict()["visual.conv1.weight"], sd["visual.conv1.weight"])


def test_build_clip_infers_the_architecture_and_keeps_the_text_mask(small_clip):
    """Built on the meta device from the shapes: every tensor filled, the text encoder (causal mask) as CLIP's."""
    import clip

    from grepq.models.high_level import clip_architecture
    assert clip_architecture(make_clip(RN50_ARGS, seed=1).state_dict()) == RN50_ARGS
    vit_args = dict(embed_dim=32, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16,
                    context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                    transformer_layers=2)
    assert clip_architecture(make_clip(vit_args).state_dict()) == vit_args
    src = small_clip.state_dict()
    m = build_clip(src)
    assert not any(t.is_meta for t in list(m.parameters()) + list(m.buffers()))
    assert m.state_dict()["visual.bn1.num_batches_tracked"].dtype == torch.int64   # integer buffers keep their type
    with torch.no_grad():
        m.visual.conv1.weight.add_(1.0)                                       # the source's tensors are not shared
    assert not torch.equal(m.visual.conv1.weight, src["visual.conv1.weight"])
    m = build_clip(src)
    tokens = clip.tokenize(["a good photo.", "a bad photo."])
    with torch.no_grad():
        assert torch.equal(m.encode_text(tokens), small_clip.encode_text(tokens))
    with pytest.raises(RuntimeError, match="Missing key"):
        build_clip({k: v for k, v in small_clip.state_dict().items() if k != "visual.layer1.0.bn1.running_mean"})


def test_rn50_fp16_archive_like_openai(tmp_path):
    """OpenAI's RN50.pt holds fp16 values; a full-size random RN50 saved that way loads into an fp32 model."""
    rn50 = make_clip(RN50_ARGS, seed=1)
    sd16 = {k: (v.half() if v.is_floating_point() else v) for k, v in rn50.state_dict().items()}
    torch.save(sd16, tmp_path / "RN50_fp16_state_dict.pt")
    m = load_clip(tmp_path / "RN50_fp16_state_dict.pt")
    assert m.visual.output_dim == 1024 and m.visual.attnpool.positional_embedding.shape == (50, 2048)
    assert m.visual.conv1.weight.dtype == torch.float32
    assert torch.equal(m.visual.conv1.weight, sd16["visual.conv1.weight"].float())
    with torch.no_grad():
        e = encode_image(m.visual, torch.randn(1, 3, 160, 200), "drop")
    assert e.shape == (1, 1024)


def test_torchscript_fp16_archive_as_openai_ships_it(tmp_path, small_clip):
    """OpenAI's RN50.pt as users have it: a TorchScript archive (torch.jit) whose weights are fp16. The small CLIP of
    the same code, traced and converted to fp16 like that archive, loads into an fp32 model holding exactly the
    archive's fp16 values, and its visual tower gives the fp16 weights' embedding (not the fp32 source's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(copy.deepcopy(small_clip), (torch.zeros(1, 3, 224, 224),
                                                             torch.zeros(1, 77, dtype=torch.long)))
    traced.half()
    torch.jit.save(traced, str(tmp_path / "RN50.pt"))
    archive = {k: v for k, v in torch.jit.load(str(tmp_path / "RN50.pt"), map_location="cpu").state_dict().items()}
    assert archive["visual.conv1.weight"].dtype == torch.float16
    m = load_clip(tmp_path / "RN50.pt")
    assert m.visual.conv1.weight.dtype == torch.float32
    loaded = m.state_dict()
    for k, v in archive.items():
        if k in loaded and v.is_floating_point():
            assert torch.equal(loaded[k], v.float()), k
    assert not torch.equal(loaded["visual.conv1.weight"], small_clip.state_dict()["visual.conv1.weight"])


def test_load_clip_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="available models"):
        load_clip("RN49")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        load_clip(tmp_path / "junk.pt")
    # a model name with no cached file and no network: a clear message telling what to pass instead
    monkeypatch.setattr("clip.clip._download", lambda url, root: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(FileNotFoundError, match="--clip-weights"):
        load_clip("RN50", download_root=str(tmp_path))


def clip_visual_without_pos(visual, h, w):
    """The official evaluation: CLIP's own forward with the positional-embedding line commented out, i.e. adding
    zeros of whatever length the token sequence has."""
    v = copy.deepcopy(visual)
    c = v.attnpool.positional_embedding.shape[1]
    v.attnpool.positional_embedding = torch.nn.Parameter(torch.zeros((h // 32) * (w // 32) + 1, c))
    return v


def test_encode_image_modes_match_clip(small_clip):
    v = small_clip.visual
    x224 = torch.randn(2, 3, 224, 224)
    x = torch.randn(1, 3, 192, 288)
    with torch.no_grad():
        # all tokens as queries (the default for images this size): CLIP's own computation, bit for bit
        assert torch.equal(encode_image(v, x224, "keep"), v(x224))
        assert torch.equal(encode_image(v, x, "drop"), clip_visual_without_pos(v, 192, 288)(x))
        # first token only: the same value up to float32 summation order
        from grepq.models.high_level import attention_pool
        feats = v.layer4(v.layer3(v.layer2(v.layer1(v.avgpool(v.relu3(v.bn3(v.conv3(v.relu2(v.bn2(v.conv2(
            v.relu1(v.bn1(v.conv1(x))))))))))))))
        first = attention_pool(v.attnpool, feats, "drop", "first")
        every = attention_pool(v.attnpool, feats, "drop", "all")
        assert torch.allclose(first, every, rtol=1e-5, atol=1e-5)
        # interpolation to the model's own grid is the identity
        assert torch.allclose(encode_image(v, x224, "interpolate"), v(x224), atol=1e-5)
        assert encode_image(v, x, "interpolate").shape == (1, 64)
    with pytest.raises(ValueError, match="keep"):
        encode_image(v, x, "keep")


def test_high_level_model_text_side_frozen_and_head_trainable(small_clip):
    hl = HighLevelModel(copy.deepcopy(small_clip), pos_embedding="keep")
    assert "text_features" in dict(hl.named_buffers())
    assert not any("transformer" in n or "token_embedding" in n for n, _ in hl.named_parameters())
    expect = text_embeddings(small_clip, ("a good photo.", "a bad photo."))
    assert torch.equal(hl.text_features, expect)
    hl.train()
    e, h = hl(torch.randn(4, 3, 224, 224))
    (h.sum() + e.sum()).backward()
    assert all(p.grad is not None for p in hl.parameters())
    # CLIP's tokenizer lower-cases: the official capitalised prompts give the same embeddings
    assert torch.equal(text_embeddings(small_clip, ("A good photo.", "A bad photo.")), expect)


def test_official_hl_checkpoint_loads_strictly(tmp_path, small_clip):
    trained = make_clip(seed=5)
    torch.save(trained.visual.state_dict(), tmp_path / "high_level_model_weights.pth")
    hl = HighLevelModel(copy.deepcopy(small_clip))
    hl.load_visual(load_hl_visual_weights(tmp_path / "high_level_model_weights.pth"))
    assert same_weights(hl.visual, trained.visual)
    # text features stay those of the original CLIP text encoder
    assert torch.equal(hl.text_features, text_embeddings(small_clip, hl.prompts))
    partial = {k: v for k, v in trained.visual.state_dict().items() if not k.startswith("layer4")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth.*missing"):
        hl.load_visual(load_hl_visual_weights(tmp_path / "partial.pth"), source=str(tmp_path / "partial.pth"))
    other = make_clip(dict(RN50_ARGS, vision_layers=(1, 1, 1, 1), vision_width=32, embed_dim=64), seed=2)
    torch.save(other.visual.state_dict(), tmp_path / "wrong.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        hl.load_visual(load_hl_visual_weights(tmp_path / "wrong.pth"))
