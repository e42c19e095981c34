"""Pictures people look at instead of numbers: grids, training curves, progress GIF, interpolations."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from dcgan.io import atomic_path


def _pyplot():
    """matplotlib's pyplot on the file-only backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _pyplot().close(fig)


def tile(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """[N, C, H, W] -> [C, H', W']: nrow images per row, `padding` pixels around each, the layout of
    torchvision's make_grid. Here rather than imported: importing torchvision.utils costs the train
    stage about 2 s of start-up (it loads every torchvision model)."""
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    grid = torch.full((channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
                      pad_value, dtype=images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + padding) + padding, column * (width + padding) + padding
        grid[:, top:top + height, left:left + width] = image
    return grid


def grid_image(images_u8: torch.Tensor, nrow: int = 8, scale: int = 1) -> Image.Image:
    """uint8 [N, C, H, W] -> one PIL image, nrow per row, optionally enlarged (nearest) for small images."""
    grid = tile(images_u8, nrow=nrow)
    image = Image.fromarray(grid[0].numpy(), mode="L") if grid.shape[0] == 1 else \
        Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy())
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def save_image(image: Image.Image, path: str | Path, **kwargs) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), **kwargs)


def display_scale(image_size: int) -> int:
    """Enlarge small images so a grid is at least ~256 px wide on screen."""
    return max(1, 64 // image_size)


def training_curves(log_csv: str | Path, path: str | Path) -> None:
    """Losses of D and G, and D's outputs on real and fake images, against the training step."""
    plt = _pyplot()
    import pandas as pd

    log = pd.read_csv(log_csv)
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(12, 4))
    ax_loss.plot(log["step"], log["loss_d"], label="D loss")
    ax_loss.plot(log["step"], log["loss_g"], label="G loss")
    ax_loss.set(xlabel="step", ylabel="loss", title="Losses")
    ax_d.plot(log["step"], log["d_x"], label="D(x)")
    ax_d.plot(log["step"], log["d_g_z_before_d_step"], label="D(G(z)) before D step")
    ax_d.plot(log["step"], log["d_g_z_after_d_step"], label="D(G(z)) after D step")
    ax_d.set(xlabel="step", ylabel="mean D output", title="Discriminator outputs", ylim=(0, 1))
    for ax in (ax_loss, ax_d):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


def real_vs_fake(real_u8: torch.Tensor, fake_u8: torch.Tensor, path: str | Path, real_title: str) -> None:
    plt = _pyplot()

    scale = display_scale(real_u8.shape[-1])
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.4))
    for ax, images, title in ((axes[0], real_u8, real_title), (axes[1], fake_u8, "Generated")):
        ax.imshow(grid_image(images, scale=scale), cmap="gray" if images.shape[1] == 1 else None,
                  vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    _save_figure(fig, path)


def nearest_training_images(samples_u8: torch.Tensor, training_u8: torch.Tensor, space: str,
                            path: str | Path) -> None:
    """Each sample (left) beside its nearest training images (right, nearest first): the first half of
    the rows are the samples nearest to any training image, the likeliest copies; the rest at random."""
    plt = _pyplot()

    k = training_u8.shape[1]
    rows = torch.cat([torch.cat([sample[None], neighbours]) for sample, neighbours in zip(samples_u8, training_u8)])
    scale = display_scale(samples_u8.shape[-1])
    fig, ax = plt.subplots(figsize=(2 + 1.2 * (k + 1), 1.4 + 1.1 * len(samples_u8)))
    ax.imshow(grid_image(rows, nrow=k + 1, scale=scale), cmap="gray" if rows.shape[1] == 1 else None, vmin=0, vmax=255)
    ax.set_title(f"each sample (left) and its {k} nearest training images, in {space} space\n"
                 f"top {len(samples_u8) // 2} rows: the samples nearest to any training image; below: at random",
                 fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    _save_figure(fig, path)


def progress_gif(grid_files: list[Path], path: str | Path, ms_per_frame: int = 400) -> None:
    """Animate the fixed-noise grids saved during training, each frame labelled with its step."""
    frames = []
    for grid_file in grid_files:
        frame = Image.open(grid_file).convert("RGB")
        label = f"step {int(grid_file.stem.split('_')[-1])}"
        canvas = Image.new("RGB", (frame.width, frame.height + 16), "white")
        canvas.paste(frame, (0, 16))
        ImageDraw.Draw(canvas).text((4, 2), label, fill="black")
        frames.append(canvas)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=ms_per_frame, loop=0)


def class_histogram(shares: dict[str, list[float]], class_names: list[str], path: str | Path) -> None:
    """Side-by-side bars: the share of each class among generated and real images."""
    plt = _pyplot()
    import numpy as np

    positions = np.arange(len(class_names))
    width = 0.8 / len(shares)
    fig, ax = plt.subplots(figsize=(max(6, len(class_names) * 0.9), 4))
    for i, (label, values) in enumerate(shares.items()):
        ax.bar(positions + (i - (len(shares) - 1) / 2) * width, values, width, label=label.replace("_", " "))
    ax.set_xticks(positions, class_names, rotation=30, ha="right")
    ax.set(ylabel="share of images", title="Classes the domain classifier assigns")
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)


def quality_curve(rows: list[dict], path: str | Path, selection: dict) -> None:
    """G's snapshots on validation images against the images seen in training: the selection score with
    its floor (real training images at the curve's sample count) and the kept G marked; beside it, with
    a domain classifier, precision, recall, density and coverage."""
    plt = _pyplot()

    score, seen = selection["score"], [row["images_seen"] for row in rows]
    with_manifold = "precision_classifier" in rows[0]
    fig, axes = plt.subplots(1, 2 if with_manifold else 1, figsize=(12 if with_manifold else 6, 4), squeeze=False)
    ax_score = axes[0][0]
    ax_score.plot(seen, [row[score] for row in rows], marker="o", label="G's snapshots")
    kept = next(row for row in rows if row["step"] == selection["chosen_step"])
    ax_score.plot([kept["images_seen"]], [kept[score]], marker="*", markersize=16, linestyle="none", color="C3",
                  label=f"kept (keep_g: {selection['keep_g']}): step {kept['step']}")
    if selection["curve_floor"] > 0:  # a log axis
        ax_score.axhline(selection["curve_floor"], color="gray", linestyle="--", label="floor: real training images")
    ax_score.set(xlabel="images seen", ylabel=f"{score} (lower is better)", yscale="log",
                 title=f"{score} on {selection['validation_images']} validation images")
    ax_score.legend()
    if with_manifold:
        ax_pr = axes[0][1]
        for name in ("precision", "recall", "density", "coverage"):
            ax_pr.plot(seen, [row[f"{name}_classifier"] for row in rows], marker="o", label=name)
        ax_pr.set(xlabel="images seen", ylabel="score", title="Fidelity and diversity over training")
        ax_pr.legend()
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


def notice(text: str, path: str | Path) -> None:
    """A figure that says why the usual one is missing (a declared output that cannot be drawn)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    _save_figure(fig, path)


def seed_comparison(configurations: list[dict], baseline: str, path: str | Path) -> None:
    """dcgan-compare's figure: per score, each seed's value as a dot, per configuration, with the mean
    and its 95% t-interval over seeds (`configurations`: the comparison's, as in its JSON)."""
    import numpy as np
    from scipy import stats

    plt = _pyplot()
    scores = list(dict.fromkeys(score for config in configurations for score in config["scores"]))
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores) + 1, 4), squeeze=False)
    names = [config["name"] for config in configurations]
    for ax, score in zip(axes[0], scores):
        for x, config in enumerate(configurations):
            entry = config["scores"].get(score)
            if entry is None:
                continue
            values = np.asarray(entry["values"])
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            color = "tab:orange" if config["config"] == baseline else "tab:blue"
            ax.scatter(x + jitter, values, s=18, color=color, alpha=0.8, zorder=3)
            if len(values) > 1:
                half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                ax.errorbar(x + 0.25, values.mean(), yerr=half, fmt="_", color="black", capsize=4, markersize=14)
            else:
                ax.plot(x + 0.25, values.mean(), "_", color="black", markersize=14)
        ax.set_xticks(range(len(names)), [name if len(name) < 28 else name[:25] + "..." for name in names],
                      rotation=20, ha="right", fontsize=8)
        ax.set_title(score, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("each dot: one training seed; bar: mean and its 95% interval over seeds (orange: baseline)",
                 fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
