"""A user's files as model inputs (autoencoders.data.inputs): images, folders, arrays, and writing back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from autoencoders.data.errors import DataError
from autoencoders.data.inputs import read_items, stream_items, write_items


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def folder(tmp_path):
    generator = np.random.default_rng(0)
    pixels = generator.integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    _save(tmp_path / "in" / "b.png", pixels[0])
    _save(tmp_path / "in" / "a.png", pixels[1])
    _save(tmp_path / "in" / "sub" / "c.png", pixels[2])
    return tmp_path / "in", pixels


def test_a_folder_is_read_in_path_order_into_the_models_value_range(folder):
    root, pixels = folder
    items = read_items(root, (1, 8, 8), (-1.0, 1.0))
    assert items.kind == "images" and items.names == ["a.png", "b.png", "sub/c.png"]
    expected = torch.from_numpy(pixels[[1, 0, 2]]).float().div(255).mul(2).sub(1).unsqueeze(1)
    assert torch.allclose(items.values, expected, atol=1e-6)


def test_rgb_model_gets_three_channels_from_a_grey_image(folder):
    root, pixels = folder
    values = read_items(root / "a.png", (3, 8, 8), (0.0, 1.0)).values
    assert values.shape == (1, 3, 8, 8)
    assert torch.allclose(values[0, 2], torch.from_numpy(pixels[1]).float() / 255, atol=1e-6)


def test_another_size_is_refused_unless_resampling_is_allowed(folder):
    root, _ = folder
    with pytest.raises(DataError, match="8x8 pixels; the model takes 4x4"):
        read_items(root, (1, 4, 4), (0.0, 1.0))
    assert read_items(root, (1, 4, 4), (0.0, 1.0), resize=True).values.shape == (3, 1, 4, 4)


def test_arrays_uint8_is_pixels_other_dtypes_are_values_and_the_channel_axis_may_be_missing(tmp_path):
    pixels = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    np.save(tmp_path / "pixels.npy", pixels)
    np.save(tmp_path / "values.npy", pixels.astype(np.float32)[:, None] / 10)
    items = read_items(tmp_path / "pixels.npy", (1, 4, 4), (-1.0, 1.0))
    assert items.kind == "array" and items.names == ["pixels-00000", "pixels-00001"]
    assert torch.allclose(items.values[:, 0], torch.from_numpy(pixels).float() / 255 * 2 - 1)
    assert torch.equal(read_items(tmp_path / "values.npy", (1, 4, 4), (-1.0, 1.0)).values, torch.from_numpy(pixels).float()[:, None] / 10)
    both = read_items([tmp_path / "pixels.npy", tmp_path / "values.npy"], (1, 4, 4), (0.0, 1.0))
    assert both.kind == "images" and len(both.values) == 4  # several sources: no single layout to write back


@pytest.mark.parametrize(
    "make, shape, message",
    [
        (lambda path: np.save(path / "x.npy", np.zeros((3, 5))), (4,), r"shape \(3, 5\).*\(N, 4\)"),
        (lambda path: np.save(path / "x.npy", np.array([np.nan, 1.0])[None]), (2,), "NaN"),
        (lambda path: (path / "x.png").write_bytes(b"not a png"), (1, 8, 8), "cannot be read as an image"),
        (lambda path: (path / "x.txt").write_text("1,2"), (1, 8, 8), "neither an image"),
        (lambda path: _save(path / "x.png", np.zeros((8, 8), np.uint8)), (8,), "not images; give a .npy array"),
        (lambda path: None, (1, 8, 8), "does not exist"),
    ],
)
def test_unusable_inputs_are_refused_with_what_to_do(tmp_path, make, shape, message):
    make(tmp_path)
    name = next((path.name for path in tmp_path.iterdir()), "missing.npy")
    with pytest.raises(DataError, match=message):
        read_items(tmp_path / name, shape, (0.0, 1.0))


def test_written_back_in_the_form_read(folder, tmp_path):
    root, _ = folder
    items = read_items(root, (1, 8, 8), (0.0, 1.0))
    written = write_items(items.values, tmp_path / "out", (0.0, 1.0), like=items)
    assert [path.relative_to(tmp_path / "out").as_posix() for path in written] == items.names
    assert torch.allclose(read_items(tmp_path / "out", (1, 8, 8), (0.0, 1.0)).values, items.values, atol=1 / 255)

    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)  # one item, without the N and channel axes
    np.save(tmp_path / "one.npy", pixels)
    array_items = read_items(tmp_path / "one.npy", (1, 8, 8), (0.0, 1.0))
    write_items(array_items.values, tmp_path / "back.npy", (0.0, 1.0), like=array_items)
    back = np.load(tmp_path / "back.npy")
    assert back.dtype == np.uint8 and np.array_equal(back, pixels)
    with pytest.raises(DataError, match="names one image"):
        write_items(items.values, tmp_path / "one.png", (0.0, 1.0))


def test_a_folder_of_mixed_sizes_is_refused_where_resampling_would_blur_and_else_resized_with_a_note(folder, caplog):
    root, _ = folder
    _save(root / "wide.png", np.full((6, 12), 255, np.uint8))  # 12x6, among three 8x8 images
    _save(root / "zz-tall.png", np.zeros((10, 4), np.uint8))
    with pytest.raises(DataError) as refused:  # compress and denoise
        read_items(root, (1, 8, 8), (0.0, 1.0))
    message = str(refused.value)
    assert "\n" not in message and "wide.png is 12x6 pixels; the model takes 8x8" in message
    assert "does not resample" in message and "Resize it (and any other image of another size) to 8x8" in message

    with caplog.at_level("INFO", logger="autoencoders"):  # detect and interpolate
        items = read_items(root, (1, 8, 8), (0.0, 1.0), resize=True)
    assert items.values.shape == (5, 1, 8, 8) and items.names == ["a.png", "b.png", "sub/c.png", "wide.png", "zz-tall.png"]
    assert torch.all(items.values[3] == 1.0)
    assert "resized 2 of 5 images to the model's 8x8 pixels" in caplog.text and "wide.png was 12x6" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="autoencoders"):
        read_items(root / "wide.png", (1, 8, 8), (0.0, 1.0), resize=True)
    assert "wide.png from 12x6 to the model's 8x8 pixels" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="autoencoders"):
        read_items(root / "a.png", (1, 8, 8), (0.0, 1.0), resize=True)
    assert caplog.text == ""  # nothing resized, nothing said


def test_inputs_named_alike_but_for_their_suffix_are_not_written_over_each_other(tmp_path):
    _save(tmp_path / "in" / "x.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "in" / "x.bmp", np.zeros((8, 8), np.uint8))
    items = read_items(tmp_path / "in", (1, 8, 8), (0.0, 1.0))
    with pytest.raises(DataError, match=r"two items would be written to .*x\.png.*give -o a \.npy file"):
        write_items(items.values, tmp_path / "out", (0.0, 1.0), like=items)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "arrays",
    [
        [np.arange(7 * 8 * 8, dtype=np.uint8).reshape(7, 8, 8)],  # pixels, without the channel axis
        [np.linspace(0, 1, 7 * 64, dtype=np.float32).reshape(7, 1, 8, 8), np.full((8, 8), 0.5)],  # then one item
        [],
    ],
)
def test_streamed_items_are_the_items_read_whole_in_chunks_across_sources(folder, tmp_path, arrays):
    root, _ = folder
    sources = [root]
    for index, array in enumerate(arrays):
        np.save(tmp_path / f"array{index}.npy", array)
        sources.append(tmp_path / f"array{index}.npy")
    sources = sources[1:] if len(arrays) == 1 else sources  # one array alone: kind "array"
    whole = read_items(sources, (1, 8, 8), (-1.0, 1.0))
    stream = stream_items(sources, (1, 8, 8), (-1.0, 1.0))
    assert (stream.count, stream.names, stream.kind) == (len(whole.values), whole.names, whole.kind)
    chunks = list(stream.chunks(3))
    assert [len(items) for items, _ in chunks] == [3] * (len(whole.values) // 3) + ([len(whole.values) % 3] if len(whole.values) % 3 else [])
    assert torch.equal(torch.cat([items for items, _ in chunks]), whole.values)
    assert [name for _, names in chunks for name in names] == whole.names


def test_a_nan_in_a_streamed_array_is_refused_naming_its_rows(tmp_path):
    array = np.zeros((10, 8, 8), dtype=np.float32)
    array[7, 2, 3] = np.nan
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(DataError, match=r"a.npy \(rows 6 to 8\) holds 1 NaN .* first at index \(1, 2, 3\)"):
        list(stream_items(tmp_path / "a.npy", (1, 8, 8), (0.0, 1.0)).chunks(3))
