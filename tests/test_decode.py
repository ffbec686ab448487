"""decode_image: modes, JPEG draft scaling, EXIF orientation, and strict failure on bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from cxrbench.data import DataError, ImageDecodeError, decode_image, turbojpeg


def _gradient(w: int = 96, h: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx * 255 // (w - 1) + yy * 64 // (h - 1)) % 256).astype(np.uint8)


def _reference(path: Path, size: int, mode: str) -> np.ndarray:
    """Slow reference: full decode, convert, resize (no draft)."""
    with Image.open(path) as im:
        out = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("channels", [1, 3])
def test_grayscale_png(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "g.png"
    Image.fromarray(_gradient()).save(path)
    out = decode_image(path, 32, channels)
    assert out.shape == (32, 32, channels) and out.dtype == np.uint8
    if channels == 3:  # gray source: R = G = B
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0] - _reference(path, 32, "L")).max() <= 1


def test_rgb_png_to_gray_and_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 200  # pure-ish red: luma 0.299 * 200 = 60
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    assert decode_image(path, 8, 3)[0, 0].tolist() == [200, 0, 0]
    assert abs(int(decode_image(path, 8, 1)[0, 0, 0]) - 60) <= 1


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = (10, 120, 240)
    rgba[..., 3] = 0  # fully transparent: the colour must survive, not turn black/white
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    assert decode_image(path, 10, 3)[5, 5].tolist() == [10, 120, 240]


@pytest.mark.parametrize("mode", ["P", "LA", "1"])
def test_other_modes(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_gradient()).convert("RGB")
    im = base.convert(mode) if mode != "LA" else Image.fromarray(_gradient()).convert("LA")
    path = tmp_path / f"m{mode}.png"
    im.save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    out = decode_image(path, 24, 1)
    assert out.shape == (24, 24, 1)
    assert np.abs(out[..., 0] - _reference(path, 24, "L")).mean() < 2


def test_16_bit_png_is_min_max_stretched(tmp_path: Path) -> None:
    values = np.full((64, 64), 1000, np.uint16)
    values[:, 32:] = 3000  # only a slice of the 16-bit range, as in DICOM exports
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    out = decode_image(path, 16, 1)[..., 0]
    assert out[:, :4].max() == 0 and out[:, -4:].min() == 255


@pytest.fixture(params=["simplejpeg", "pillow"])
def jpeg_path_used(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the libjpeg-turbo fast path and through Pillow's draft mode alone."""
    if request.param == "simplejpeg":
        if not turbojpeg.available():
            pytest.skip("simplejpeg is not installed: JPEGs go through Pillow only")
    else:
        monkeypatch.setattr(turbojpeg, "simplejpeg", None)
    return request.param


def test_large_jpeg_is_dct_scaled_and_matches_full_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jpeg_path_used: str
) -> None:
    path = tmp_path / "big.jpeg"
    Image.fromarray(_gradient(1200, 900)).save(path, quality=90)
    decoded = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy_draft(self, mode, size):  # type: ignore[no-untyped-def]
        result = real_draft(self, mode, size)
        decoded.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy_draft)
    if jpeg_path_used == "simplejpeg":
        real_decode = turbojpeg.simplejpeg.decode_jpeg

        def spy_decode(*args, **kwargs):  # type: ignore[no-untyped-def]
            out = real_decode(*args, **kwargs)
            decoded.append((out.shape[1], out.shape[0]))
            return out

        monkeypatch.setattr(turbojpeg.simplejpeg, "decode_jpeg", spy_decode)
    out = decode_image(path, 64, 1)[..., 0]
    assert decoded == [(150, 113)]  # libjpeg decoded at 1/8 scale, not 1200 x 900
    assert np.abs(out - _reference(path, 64, "L")).mean() < 2.0


def _jpeg_variants(tmp_path: Path) -> list[Path]:
    """Gray and RGB, baseline and progressive, 4:2:0 and 4:4:4, odd sizes, tiny and large."""
    rng = np.random.default_rng(0)
    out = []
    for i, (w, h, mode, extra) in enumerate([
        (1201, 899, "L", {}), (1000, 1333, "RGB", {"subsampling": 2}),
        (777, 555, "RGB", {"subsampling": 0, "progressive": True}),
        (640, 480, "L", {"progressive": True}), (130, 127, "RGB", {}), (40, 30, "L", {}),
    ]):
        gray = np.clip(_gradient(w, h).astype(int) + rng.integers(-20, 20, (h, w)), 0, 255)
        pixels = gray.astype(np.uint8)
        if mode == "RGB":
            pixels = np.stack([pixels, pixels[::-1], np.roll(pixels, 7, axis=1)], axis=-1)
        path = tmp_path / f"variant{i}.jpeg"
        Image.fromarray(pixels).save(path, quality=88, **extra)
        out.append(path)
    return out


def test_simplejpeg_and_pillow_give_identical_pixels(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if not turbojpeg.available():
        pytest.skip("simplejpeg is not installed: JPEGs go through Pillow only")
    paths = _jpeg_variants(tmp_path)
    fast = {(p, s, c): decode_image(p, s, c) for p in paths for s in (16, 64, 128, 224)
            for c in (1, 3)}
    monkeypatch.setattr(turbojpeg, "simplejpeg", None)
    for (path, size, channels), pixels in fast.items():
        assert np.array_equal(pixels, decode_image(path, size, channels)), (path, size, channels)


@pytest.mark.parametrize("case", ["exif_rotated", "cmyk", "truncated"])
def test_simplejpeg_leaves_the_unusual_to_pillow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 case: str) -> None:
    """EXIF-rotated, CMYK and damaged files go through Pillow (which rotates, converts, or
    words the error); simplejpeg is not even called for the first two."""
    if not turbojpeg.available():
        pytest.skip("simplejpeg is not installed: JPEGs go through Pillow only")
    calls = []
    real_decode = turbojpeg.simplejpeg.decode_jpeg
    monkeypatch.setattr(turbojpeg.simplejpeg, "decode_jpeg",
                        lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    path = tmp_path / "x.jpeg"
    if case == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # stored 80 x 40, displayed 40 x 80
        Image.fromarray(_gradient(80, 40)).save(path, exif=exif.tobytes())
        out = decode_image(path, 32, 1)[..., 0].astype(int)
        assert out[0].std() < out[:, 0].std()  # the gradient now runs down, not across
        assert calls == []
    elif case == "cmyk":
        Image.new("CMYK", (64, 48), (0, 200, 200, 30)).save(path, quality=95)
        assert decode_image(path, 16, 3)[8, 8, 0] > 150
        assert calls == []
    else:
        data = _jpeg_bytes(tmp_path)
        path.write_bytes(data[:-200])
        assert turbojpeg.decode_scaled(path, "L", 256, 256, 64, gray=True) is None
        with pytest.raises(ImageDecodeError, match="truncated"):  # Pillow's words
            decode_image(path, 64, 1)
        assert calls  # simplejpeg refused it first


def test_progressive_rgb_jpeg(tmp_path: Path) -> None:
    rgb = np.stack([_gradient(300, 200)] * 3, axis=-1)
    rgb[..., 2] //= 2
    path = tmp_path / "prog.jpeg"
    Image.fromarray(rgb).save(path, progressive=True, quality=90)
    with Image.open(path) as check:
        assert check.info.get("progressive") or check.info.get("progression")
    for channels, mode in ((1, "L"), (3, "RGB")):
        out = decode_image(path, 48, channels)
        ref = _reference(path, 48, mode).reshape(48, 48, channels)
        assert np.abs(out - ref).mean() < 2.0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((40, 80), np.uint8)
    stored[:, 40:] = 255  # left half black, right half white (as stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored left edge becomes the top
    path = tmp_path / "rotated.jpeg"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    out = decode_image(path, 32, 1)[..., 0].astype(int)
    assert out[:12].mean() < 30 and out[-12:].mean() > 225
    plain = tmp_path / "plain.jpeg"
    Image.fromarray(stored).save(plain)
    unrotated = decode_image(plain, 32, 1)[..., 0].astype(int)
    assert unrotated[:, :12].mean() < 30 and unrotated[:, -12:].mean() > 225


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (64, 48), (0, 200, 200, 30))
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    out = decode_image(path, 16, 3)
    assert np.abs(out - _reference(path, 16, "RGB")).max() <= 2
    assert out[8, 8, 0] > 150 and out[8, 8, 1] < 100  # reddish, not inverted


def _jpeg_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "ok.jpeg"
    Image.fromarray(_gradient(256, 256)).save(path, quality=90)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["truncated", "garbage", "text", "empty", "truncated_png"])
def test_bad_files_raise(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("bad.png" if kind == "truncated_png" else "bad.jpeg")
    if kind == "truncated":
        data = _jpeg_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "text":
        path.write_text("this is not an image, just a text file with a .jpeg name\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        png = tmp_path / "ok.png"
        Image.fromarray(_gradient(256, 256)).save(png)
        data = png.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, 32, 1)
    assert info.value.path == str(path) and info.value.reason
    assert isinstance(info.value, DataError)


def test_truncated_jpeg_not_accepted_even_with_header_intact(tmp_path: Path) -> None:
    data = _jpeg_bytes(tmp_path)
    path = tmp_path / "cut.jpeg"
    path.write_bytes(data[:-200])  # most of the scan is there, the end is not
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(path, 64, 1)


def test_load_truncated_images_flag_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.png"
    Image.fromarray(_gradient()).save(path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(path, 8, 1)


def test_decode_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageDecodeError("/x.jpeg", "OSError: broken")))
    assert (err.path, err.reason) == ("/x.jpeg", "OSError: broken")
    assert "cannot decode /x.jpeg" in str(err)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="channels"):
        decode_image(tmp_path / "x.png", 8, 2)


@pytest.mark.realdata
@pytest.mark.slow
def test_every_original_matches_slow_reference(originals_data: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Draft-scaled decoding of every original stays close to a full decode + resize, and
    the simplejpeg fast path gives exactly Pillow's draft-mode pixels."""
    paths = sorted(p for p in originals_data.rglob("*") if p.suffix.lower() == ".jpeg")
    assert len(paths) == 370
    errors = []
    fast = {}
    for path in paths:
        with Image.open(path) as im:
            wanted = [(1, "L"), (3, "RGB")] if im.mode == "RGB" else [(1, "L")]
        for channels, mode in wanted:
            out = decode_image(path, 128, channels)
            assert out.shape == (128, 128, channels) and out.dtype == np.uint8
            ref = _reference(path, 128, mode).reshape(128, 128, channels)
            errors.append(np.abs(out - ref).mean())
            fast[path, channels] = out
    assert np.mean(errors) < 1.5 and np.max(errors) < 4.0, (np.mean(errors), np.max(errors))
    if turbojpeg.available():
        monkeypatch.setattr(turbojpeg, "simplejpeg", None)
        differ = [(p.name, c) for (p, c), out in fast.items()
                  if not np.array_equal(out, decode_image(p, 128, c))]
        assert differ == []
