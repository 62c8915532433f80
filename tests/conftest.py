"""Shared fixtures: randomly initialised models standing in for downloaded weights, and real photographs.

No weights can be downloaded here: a small CLIP built by OpenAI's own ``clip.model.CLIP`` (a ResNet image
encoder, like RN50 but narrower) is saved in both formats users have (a TorchScript archive like ``RN50.pt``
and a plain state dict). Photographs come from scikit-image's data folder.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip.model as clip_model_lib

from grepq.models.low_level import LowLevelModel

# A small CLIP of the same code as RN50: ModifiedResNet vision (layers (1,1,1,1), width 16 -> embedding 64),
# a one-layer text transformer, CLIP's real vocabulary and context length.
SMALL_CLIP_ARGS = dict(embed_dim=64, image_resolution=224, vision_layers=(1, 1, 1, 1), vision_width=16,
                       vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
                       transformer_heads=1, transformer_layers=1)
RN50_ARGS = dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                 vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12)


def make_clip(args=SMALL_CLIP_ARGS, seed: int = 0):
    torch.manual_seed(seed)
    model = clip_model_lib.CLIP(**args).eval()
    with torch.no_grad():  # CLIP's init leaves BatchNorm statistics at 0/1: make them non-trivial
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="session")
def small_clip():
    return make_clip()


@pytest.fixture(scope="session")
def clip_files(tmp_path_factory, small_clip):
    """The small CLIP saved as a TorchScript archive (like OpenAI's RN50.pt) and as a plain state dict."""
    d = tmp_path_factory.mktemp("clip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(small_clip, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)))
        torch.jit.save(traced, str(d / "small_clip_jit.pt"))
    torch.save(small_clip.state_dict(), d / "small_clip_state_dict.pt")
    return {"jit": d / "small_clip_jit.pt", "state_dict": d / "small_clip_state_dict.pt"}


def make_ll(seed: int = 0) -> LowLevelModel:
    torch.manual_seed(seed)
    model = LowLevelModel().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def ll_model():
    return make_ll()


def photo(name: str, size=None) -> np.ndarray:
    """A scikit-image sample photograph as uint8 HxWx3 (grey ones repeated), optionally cropped to (h, w)."""
    import skimage.data
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if size is not None:
        img = img[: size[0], : size[1]]
    return np.ascontiguousarray(img)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """A folder of four real photographs (PNG), cropped small for speed."""
    from PIL import Image
    d = tmp_path_factory.mktemp("photos")
    for name, size in (("astronaut", (240, 200)), ("coffee", (200, 260)), ("chelsea", (220, 240)),
                       ("rocket", (250, 210))):
        Image.fromarray(photo(name, size)).save(d / f"{name}.png")
    return d


@pytest.fixture(scope="session")
def pristine_patches():
    """Pristine-like patches: 96x96 crops of sharp, colourful photographs, (N, 3, 96, 96) in [0, 1]."""
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = torch.from_numpy(photo(name)).permute(2, 0, 1).float() / 255
        p = img.unfold(1, 96, 96).unfold(2, 96, 96).permute(1, 2, 0, 3, 4).reshape(-1, 3, 96, 96)
        out.append(p[::3])
    return torch.cat(out).contiguous()


@pytest.fixture(autouse=True, scope="session")
def _isolated_grepq_cache(tmp_path_factory):
    """Scorers keep their constants in a cache folder (grepq.scoring.cache): a temporary one for the test session,
    never the user's ~/.cache/grepq (subprocesses inherit it through the environment)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GREPQ_CACHE_DIR", str(tmp_path_factory.mktemp("grepq_cache")))
    yield
    mp.undo()


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for the block. One thread: on shared 2-core machines two threads per
    process ran the toy forward passes several times slower, and float32 results round alike only with the same
    thread count (torchrun gives each process OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def one_thread():
    """One torch thread for the test (:func:`torch_threads`)."""
    with torch_threads(1):
        yield
