"""Reading any image the way the official pipeline reads an 8-bit RGB file (grepq/io.py's table)."""
import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq.data.io import ImageReadError, expand_inputs, read_image


@pytest.fixture()
def rgb():
    return photo("coffee", (40, 50))


def test_rgb_is_totensor(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert x.shape == (3, 40, 50) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_grey_is_repeated(tmp_path, rgb):
    g = rgb[:, :, 1]
    Image.fromarray(g).save(tmp_path / "g.png")
    x = read_image(tmp_path / "g.png")
    assert x.shape == (3, 40, 50)
    assert torch.equal(x[0], torch.from_numpy(g).float() / 255) and torch.equal(x[0], x[2])


def test_rgba_drops_alpha(tmp_path, rgb):
    a = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_palette_is_applied(tmp_path, rgb):
    Image.fromarray(rgb).quantize(16).save(tmp_path / "p.png")
    pal = Image.open(tmp_path / "p.png")
    assert pal.mode == "P"
    expect = torch.from_numpy(np.asarray(pal.convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(read_image(tmp_path / "p.png"), expect)


def test_16_bit_grey(tmp_path):
    v = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 31)
    Image.fromarray(v).save(tmp_path / "g16.png")
    x = read_image(tmp_path / "g16.png")
    assert x.shape == (3, 40, 50)
    assert torch.allclose(x[1], torch.from_numpy(v.astype(np.float32) / 65535), atol=1e-7)


def test_cmyk_jpeg(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    x = read_image(tmp_path / "c.jpg")
    assert x.shape == (3, 40, 50)
    assert (x - torch.from_numpy(rgb).permute(2, 0, 1).float() / 255).abs().mean() < 0.05


def test_odd_sizes(tmp_path):
    Image.fromarray(photo("astronaut", (97, 13))).save(tmp_path / "odd.bmp")
    assert read_image(tmp_path / "odd.bmp").shape == (3, 97, 13)


def test_truncated_and_corrupt_files_name_the_file(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")
    (tmp_path / "c.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match="c.png"):
        read_image(tmp_path / "c.png")
    with pytest.raises(ImageReadError, match="missing.png.*no such file"):
        read_image(tmp_path / "missing.png")


def test_expand_inputs_reports_what_it_skips(tmp_path, rgb):
    (tmp_path / "d").mkdir()
    (tmp_path / "empty").mkdir()
    Image.fromarray(rgb).save(tmp_path / "d" / "b.png")
    Image.fromarray(rgb).save(tmp_path / "d" / "a.JPG")
    (tmp_path / "d" / "notes.txt").write_text("x")
    images, skipped = expand_inputs([tmp_path / "d", tmp_path / "empty", tmp_path / "nope.png"])
    assert [p.name for p in images] == ["a.JPG", "b.png"]
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert set(reasons) == {"notes.txt", "empty", "nope.png"}
