"""One video per evaluation: the recorded episodes side by side in a grid, each tile labelled
with its episode and outcome (green border: success, red: failure)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

SUCCESS_COLOUR = (40, 180, 70)
FAILURE_COLOUR = (210, 50, 40)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the squarest grid holding ``n`` tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def tile_label(result: dict[str, Any]) -> str:
    outcome = "success" if result["success"] else "failure"
    if result.get("failure"):
        outcome += f": {result['failure']}"
    task = f"{result['task']} " if result.get("task") else ""
    return f"{task}ep {result['episode']} {outcome}"


def label_frame(frame: np.ndarray, text: str, success: bool) -> np.ndarray:
    """``frame`` with a border in the outcome's colour and ``text`` on a dark strip."""
    from PIL import Image, ImageDraw, ImageFont

    colour = SUCCESS_COLOUR if success else FAILURE_COLOUR
    h, w = frame.shape[:2]
    border = max(2, min(h, w) // 64)
    out = frame.copy()
    out[:border], out[-border:], out[:, :border], out[:, -border:] = colour, colour, colour, colour
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    size = max(8, min(h, w) // 18)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = border + 1
    draw.rectangle([border, border, min(w - border, right - left + 2 * pad), bottom - top + 2 * pad], fill=(0, 0, 0))
    draw.text((pad - left, pad - top), text, fill=colour, font=font)
    return np.asarray(image)


def tile_episodes(recorded: list[tuple[dict[str, Any], list[np.ndarray]]]) -> list[np.ndarray]:
    """Grid frames of the recorded episodes, as long as the longest; an episode that ended
    earlier holds its last frame. Frame sizes are padded to a multiple of 16 for H.264."""
    recorded = [(r, f) for r, f in recorded if f]
    if not recorded:
        return []
    rows, cols = grid_shape(len(recorded))
    h, w = recorded[0][1][0].shape[:2]
    height, width = _round_up(rows * h, 16), _round_up(cols * w, 16)
    length = max(len(frames) for _, frames in recorded)
    labels = [(tile_label(result), bool(result["success"])) for result, _ in recorded]
    grid = []
    for t in range(length):
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        for i, (_, frames) in enumerate(recorded):
            r, c = divmod(i, cols)
            text, success = labels[i]
            canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = label_frame(frames[min(t, len(frames) - 1)], text, success)
        grid.append(canvas)
    return grid


def write_video(path: str | Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write ``frames`` with imageio, through a temporary file renamed into place."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        imageio.mimsave(tmp, frames, fps=fps)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_episode_grid(path: str | Path, recorded: list[tuple[dict[str, Any], list[np.ndarray]]],
                       fps: int) -> Path | None:
    frames = tile_episodes(recorded)
    return write_video(path, frames, fps) if frames else None


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple
