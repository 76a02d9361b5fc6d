"""Labels beside their points without overlapping each other where there is room."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.transforms import Transform

LABEL_SIZE = 8.0  # points
LABEL_CHAR_WIDTH = 0.68  # DejaVu Sans glyphs average ~0.6 em: a safe overestimate
FAR_LEVELS = 8  # label rows tried above and below a crowded point
NEAR_SPOTS = 6  # label spots touching their point (see _label_spots)

Label = tuple[float, float, str, str, Transform]  # x, y, text, colour, x/y's transform
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in points


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: Box, b: Box) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


def _label_spots(w: float, h: float) -> list[tuple[float, float]]:
    """Offsets (points) of a label's lower-left corner from its point, nearest first:
    the four corners, above and below (NEAR_SPOTS), then one row and more up and down,
    where a label may sit closer to another point than to its own: those get a leader."""
    g = 4.0
    near = [(g, g / 2), (g, -h - g / 2), (-w - g, g / 2), (-w - g, -h - g / 2),
            (-w / 2, g + 2), (-w / 2, -h - g - 2), (g, h + g), (g, -2 * h - g)]
    far = [(g, sign * k * (h + 3)) for k in range(2, 2 + FAR_LEVELS) for sign in (1, -1)]
    return near + far


def _label_box(px: float, py: float, text: str, existing: list[Box],
               frame: Box) -> tuple[Box, bool]:
    """Where a label goes: the first spot (see _label_spots) that stays in the axes and
    covers no marker or label, or the first spot if none; and whether it is far.
    Text size is estimated from its length (no renderer is needed)."""
    w, h = LABEL_CHAR_WIDTH * LABEL_SIZE * len(text), LABEL_SIZE
    spots = _label_spots(w, h)
    boxes = [(px + dx, py + dy, px + dx + w, py + dy + h) for dx, dy in spots]
    for i, b in enumerate(boxes):
        if _inside(b, frame) and not any(_overlaps(b, o) for o in existing):
            return b, i >= NEAR_SPOTS
    return boxes[0], False


def place_labels(ax: Axes, labels: list[Label]) -> None:
    """Labels beside their points without overlapping each other where there is room:
    the layout is settled first, so positions on the page are the final ones."""
    fig = ax.get_figure()
    fig.draw_without_rendering()
    to_pt = 72.0 / fig.dpi
    where = [tuple(trans.transform((x, y)) * to_pt) for x, y, _, _, trans in labels]
    taken: list[Box] = [(px - 5, py - 5, px + 5, py + 5) for px, py in where]  # markers
    frame = tuple(np.asarray(ax.bbox.extents) * to_pt)
    for (x, y, text, colour, trans), (px, py) in sorted(
            zip(labels, where, strict=True), key=lambda item: (item[1][0], item[1][1])):
        box, far = _label_box(px, py, text, taken, frame)
        taken.append(box)
        leader = {"arrowstyle": "-", "color": "0.75", "linewidth": 0.5} if far else None
        ax.annotate(text, (x, y), xycoords=trans, xytext=(box[0] - px, box[1] - py),
                    textcoords="offset points", fontsize=LABEL_SIZE, color=colour,
                    ha="left", va="bottom", arrowprops=leader)
