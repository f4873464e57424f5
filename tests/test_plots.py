"""Pictures: exact grid geometry and pixel values, what each chart draws, PNG output."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from autoencoders import plots


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


# -- image_grid ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "nrow", "padding", "scale", "expected_size"),
    [
        (16, None, 2, 3, (4 * (24 + 2) + 2, 4 * (24 + 2) + 2)),  # default: ceil(sqrt(16)) = 4 per row
        (10, 4, 1, 2, (4 * (16 + 1) + 1, 3 * (16 + 1) + 1)),  # 10 items in rows of 4: 3 rows
        (3, None, 0, 1, (2 * 8, 2 * 8)),
    ],
)
def test_image_grid_size(count, nrow, padding, scale, expected_size):
    image = plots.image_grid(torch.rand(count, 1, 8, 8), nrow=nrow, padding=padding, scale=scale)
    assert image.size == expected_size  # (width, height)
    assert image.mode == "L"


def test_image_grid_default_scale_makes_small_items_visible():
    digits = plots.image_grid(np.zeros((4, 1, 8, 8)), padding=0)
    mnist = plots.image_grid(np.zeros((4, 1, 28, 28)), padding=0)
    assert digits.size == (2 * 64, 2 * 64)  # 8x8 upscaled 8 times
    assert mnist.size == (2 * 84, 2 * 84)  # 28x28 upscaled 3 times: the first factor reaching 64 pixels


def test_image_grid_maps_and_clips_values():
    # value range (-1, 1): lo -> 0, hi -> 255, midpoint -> 128, beyond the range clipped
    images = np.stack([np.full((1, 2, 2), value) for value in (-1.0, 1.0, 0.0, 5.0, -7.0)])
    grid = pixels(plots.image_grid(images, nrow=5, value_range=(-1.0, 1.0), padding=1, scale=1, pad_value=0.0))
    cells = [grid[1:3, 1 + 3 * index : 3 + 3 * index] for index in range(5)]
    assert [int(cell.min()) for cell in cells] == [0, 255, 128, 255, 0]
    assert all(cell.min() == cell.max() for cell in cells)
    assert grid[0].max() == 0  # padding at pad_value 0: black


def test_image_grid_places_items_row_by_row_and_pads():
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1) / 5  # item i has brightness i / 5
    grid = pixels(plots.image_grid(images, nrow=3, padding=1, scale=2))
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1)
    for index in range(6):
        row, column = divmod(index, 3)
        top, left = 1 + 3 * row, 1 + 3 * column
        assert (grid[top : top + 2, left : left + 2] == round(index / 5 * 255)).all()
    assert (grid[0] == 255).all() and (grid[:, 0] == 255).all()  # white padding by default


def test_image_grid_rgb_and_hw_inputs():
    rgb = torch.zeros(2, 3, 4, 4)
    rgb[:, 0] = 1.0  # pure red
    image = plots.image_grid(rgb, padding=0, scale=1)
    assert image.mode == "RGB" and image.size == (8, 4)
    assert tuple(pixels(image)[0, 0]) == (255, 0, 0)
    assert plots.image_grid(np.ones((3, 5, 5)), padding=0, scale=1).size == (10, 10)  # (N, H, W): grey


@pytest.mark.parametrize("shape", [(8, 20), (8, 50, 2), (4, 2, 6, 6)])
def test_image_grid_rejects_non_images_and_points_to_line_plots(shape):
    with pytest.raises(ValueError, match="line_plot_grid"):
        plots.image_grid(np.zeros(shape))


def test_image_grid_row_labels_add_a_left_margin():
    plain = plots.image_grid(np.zeros((4, 1, 8, 8)), nrow=2)
    labelled = plots.image_grid(np.zeros((4, 1, 8, 8)), nrow=2, row_labels=["class 0", "class 1"])
    assert labelled.height == plain.height and labelled.width > plain.width
    margin = pixels(labelled)[:, : labelled.width - plain.width]
    assert margin.min() < 128  # dark text drawn on the white margin
    assert (pixels(labelled)[:, labelled.width - plain.width :] == pixels(plain)).all()


# -- reconstruction_grid and interpolation_strip ---------------------------------------------------------
def test_reconstruction_grid_puts_each_input_above_its_reconstruction():
    count, ncol, padding, scale, band = 5, 3, 1, 2, 4
    input_bytes = np.array([10, 20, 30, 40, 50])
    output_bytes = input_bytes + 100  # a distinct brightness per item and role
    inputs = torch.tensor(input_bytes / 255).view(count, 1, 1, 1)
    outputs = torch.tensor(output_bytes / 255).view(count, 1, 1, 1)
    grid = pixels(
        plots.reconstruction_grid(inputs, outputs, nrow=ncol, padding=padding, scale=scale, band=band, row_labels=None)
    )
    pair_height = 2 * (scale + padding) + padding
    assert grid.shape == (2 * pair_height + band, ncol * (scale + padding) + padding)
    for index in range(count):
        pair, column = divmod(index, ncol)
        top = pair * (pair_height + band) + padding
        left = padding + column * (scale + padding)
        input_block = grid[top : top + scale, left : left + scale]
        output_block = grid[top + scale + padding : top + 2 * scale + padding, left : left + scale]
        assert (input_block == input_bytes[index]).all()
        assert (output_block == output_bytes[index]).all()
    band_rows = grid[pair_height : pair_height + band]
    assert (band_rows == round(0.55 * 255)).all()  # the grey band between the two pairs of rows


def test_reconstruction_grid_labels_and_shape_mismatch():
    inputs = np.zeros((4, 1, 8, 8))
    unlabelled = plots.reconstruction_grid(inputs, inputs, row_labels=None)
    labelled = plots.reconstruction_grid(inputs, inputs)
    assert labelled.width > unlabelled.width and labelled.height == unlabelled.height
    with pytest.raises(ValueError, match="same shape"):
        plots.reconstruction_grid(inputs, np.zeros((3, 1, 8, 8)))


def test_interpolation_strip_rows_run_left_to_right():
    steps = 4
    ramp = torch.linspace(0, 1, steps).view(1, steps, 1, 1, 1)
    frames = torch.cat([ramp, 1 - ramp])  # row 0 dark to bright, row 1 bright to dark
    strip = pixels(plots.interpolation_strip(frames, padding=0, scale=1))
    assert strip.shape == (2, steps)
    assert list(strip[0]) == [0, 85, 170, 255]
    assert list(strip[1]) == [255, 170, 85, 0]
    single = plots.interpolation_strip(torch.rand(10, 1, 8, 8), padding=0, scale=1)  # (steps, C, H, W)
    assert single.size == (80, 8)
    with pytest.raises(ValueError, match="rows, steps"):
        plots.interpolation_strip(torch.rand(10, 8))


# -- line_plot_grid --------------------------------------------------------------------------------------
def test_line_plot_grid_sequences_draw_each_channel_and_the_overlay():
    sequences = np.random.default_rng(0).normal(size=(5, 30, 2))
    figure = plots.line_plot_grid(sequences, overlay=sequences * 0.5, titles=[f"item {i}" for i in range(5)])
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 5
    first = visible[0]
    assert len(first.lines) == 4  # 2 channels x (input, overlay)
    np.testing.assert_allclose(first.lines[0].get_ydata(), sequences[0, :, 0])
    np.testing.assert_allclose(first.lines[1].get_ydata(), sequences[0, :, 0] * 0.5)
    assert first.get_title() == "item 0"


def test_line_plot_grid_vectors_and_bad_shapes():
    figure = plots.line_plot_grid(np.arange(12.0).reshape(3, 4))
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 3
    np.testing.assert_allclose(visible[2].lines[0].get_ydata(), [8, 9, 10, 11])
    with pytest.raises(ValueError, match="image_grid"):
        plots.line_plot_grid(np.zeros((2, 1, 8, 8)))


# -- loss_curves -----------------------------------------------------------------------------------------
SPARSE_METRICS = """epoch,step,train/kl,train/loss,train/recon,val/kl,val/loss,val/recon
0,0,1.0,100.0,99.0,,,
0,49,2.0,50.0,48.0,,,
0,49,,,,2.5,55.0,52.5
1,99,3.0,5.0,2.0,,,
1,99,,,,3.5,6.0,2.5
"""


def test_loss_curves_one_axes_per_term_with_train_and_val(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(SPARSE_METRICS)
    figure = plots.loss_curves(path)
    axes_by_title = {axes.get_title(): axes for axes in figure.axes if axes.get_visible()}
    assert list(axes_by_title) == ["loss", "kl", "recon"]  # the total loss first
    loss_axes = axes_by_title["loss"]
    labels = [line.get_label() for line in loss_axes.lines]
    assert labels == ["train", "val"]
    train, val = loss_axes.lines
    np.testing.assert_allclose(train.get_xdata(), [0, 49, 99])  # sparse rows: NaN gaps dropped
    np.testing.assert_allclose(train.get_ydata(), [100, 50, 5])
    np.testing.assert_allclose(val.get_xdata(), [49, 99])
    assert loss_axes.get_yscale() == "log"  # positive, 5 to 100: more than a decade
    assert axes_by_title["kl"].get_yscale() == "linear"  # 1 to 3.5
    assert loss_axes.get_xlabel() == "step"


def test_loss_curves_dataframe_multi_player_terms_and_errors():
    table = pd.DataFrame(
        {
            "step": [0, 10, 10],
            "train/autoencoder/loss": [1.0, 0.5, None],
            "train/critic/loss": [-0.2, 0.1, None],
            "val/loss": [None, None, 0.6],
            "epoch": [0, 0, 0],
        }
    )
    figure = plots.loss_curves(table)
    titles = sorted(axes.get_title() for axes in figure.axes if axes.get_visible())
    assert titles == ["autoencoder/loss", "critic/loss", "loss"]
    critic = next(axes for axes in figure.axes if axes.get_title() == "critic/loss")
    assert critic.get_yscale() == "linear"  # not all positive
    with pytest.raises(ValueError, match="train"):
        plots.loss_curves(pd.DataFrame({"step": [0], "epoch": [0]}))


# -- latent_scatter --------------------------------------------------------------------------------------
def scatter_offsets(figure: Figure) -> np.ndarray:
    return np.asarray(figure.axes[0].collections[0].get_offsets())  # the scatter axes comes first


def test_latent_scatter_2d_codes_are_drawn_as_they_are():
    codes = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    labels = np.arange(50) % 3
    figure = plots.latent_scatter(torch.from_numpy(codes), torch.from_numpy(labels), class_names=["a", "b", "c"])
    np.testing.assert_allclose(scatter_offsets(figure), codes, rtol=1e-6)
    legend = figure.axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["a", "b", "c"]


def test_latent_scatter_pca_finds_the_high_variance_direction():
    rng = np.random.default_rng(0)
    direction = np.array([1.0, -1.0, 0.0, 0.0, 0.0]) / np.sqrt(2)
    strength = rng.normal(scale=10.0, size=300)
    codes = strength[:, None] * direction + rng.normal(scale=0.1, size=(300, 5))
    figure = plots.latent_scatter(codes, method="pca")
    first_component = scatter_offsets(figure)[:, 0]
    assert abs(np.corrcoef(first_component, strength)[0, 1]) > 0.99
    title = figure.axes[0].get_title()
    assert "PCA" in title and "%" in title and "PC 1" in figure.axes[0].get_xlabel()


def test_latent_scatter_subsamples_and_uses_a_colorbar_for_continuous_labels():
    codes = np.random.default_rng(0).normal(size=(400, 2))
    angles = np.linspace(0.0, 360.0, 400)
    figure = plots.latent_scatter(codes, angles, max_points=100, label_name="angle")
    offsets = scatter_offsets(figure)
    assert len(offsets) == 100
    assert all(any(np.allclose(point, code) for code in codes) for point in offsets[:10])
    assert len(figure.axes) == 2  # the scatter and its colorbar
    assert figure.axes[1].get_ylabel() == "angle"


def test_latent_scatter_tsne_and_errors():
    codes = np.random.default_rng(0).normal(size=(60, 6))
    figure = plots.latent_scatter(codes, np.arange(60) % 2, method="tsne")
    assert scatter_offsets(figure).shape == (60, 2)
    assert "t-SNE" in figure.axes[0].get_title()
    with pytest.raises(ValueError, match="pca"):
        plots.latent_scatter(codes, method="isomap")


def test_latent_scatter_umap_missing_names_the_package():
    pytest.importorskip("sklearn")
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install umap-learn"):
            plots.latent_scatter(np.zeros((20, 5)), method="umap")
    else:
        pytest.skip("umap-learn is installed")


# -- output ----------------------------------------------------------------------------------------------
def test_png_bytes_and_save_picture(tmp_path):
    image = plots.image_grid(np.zeros((4, 1, 8, 8)))
    figure = plots.latent_scatter(np.zeros((5, 2)) + np.arange(5)[:, None])
    assert Image.open(io.BytesIO(plots.image_to_png_bytes(image))).size == image.size
    decoded = Image.open(io.BytesIO(plots.figure_to_png_bytes(figure)))
    assert decoded.format == "PNG" and decoded.width > 300
    saved = plots.save_picture(figure, tmp_path / "pictures" / "latent.png")
    assert saved.exists() and Image.open(saved).format == "PNG"
