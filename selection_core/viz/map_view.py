"""What part of a large map the browser draws, and which rows a selection on it holds.

A browser draws tens of thousands of WebGL points smoothly, not a million (and a lasso over a
million drawn points would post them all back). So the map draws at most `MAP_POINTS` rows of the
current window — all of them when the window holds fewer, else a fixed random subset (each row
has one random draw priority, so zooming in only adds points) — over a density layer of every
row in the window. Zooming in server-side (`MapWindow.around`) narrows the window until every
point of it is drawn: every row is reachable. Selections are resolved here, on the coordinates of
every row, from the box / lasso geometry the browser reports — never from the drawn points alone.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAP_POINTS = 40_000  # drawn points at most; beyond, a random subset over the density layer
DENSITY_BINS = 160  # density grid cells per axis


@dataclass(frozen=True)
class MapWindow:
    """A rectangle of the map: [x0, x1] × [y0, y1] in map coordinates."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def around(cls, coords: np.ndarray, margin: float = 0.02) -> MapWindow:
        """The smallest window holding `coords`, widened by `margin` of its size on each side."""
        low, high = coords.min(axis=0).astype(float), coords.max(axis=0).astype(float)
        pad = np.maximum(high - low, 1e-6) * margin
        return cls(low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])

    def contains(self, coords: np.ndarray) -> np.ndarray:
        x, y = coords[:, 0], coords[:, 1]
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


def draw_priority(n: int, seed: int = 0) -> np.ndarray:
    """One seeded random rank per row: a view draws the lowest-ranked rows it holds, so the
    subset is uniform (faithful to the density) and stable across k, colours and zooms."""
    return np.random.default_rng(seed).permutation(n).astype(np.int32)


def visible_rows(coords: np.ndarray, window: MapWindow | None, priority: np.ndarray,
                 limit: int = MAP_POINTS) -> tuple[np.ndarray, int]:
    """(rows to draw, ascending; how many rows the window holds)."""
    inside = np.arange(len(coords)) if window is None else np.flatnonzero(window.contains(coords))
    if len(inside) <= limit:
        return inside, len(inside)
    chosen = inside[np.argpartition(priority[inside], limit - 1)[:limit]]
    return np.sort(chosen), len(inside)


def density_grid(coords: np.ndarray, window: MapWindow, bins: int = DENSITY_BINS
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x centres, y centres, counts[y, x] as float32 with empty cells NaN) of the window."""
    counts, x_edges, y_edges = np.histogram2d(
        coords[:, 0], coords[:, 1], bins=bins, range=[[window.x0, window.x1],
                                                      [window.y0, window.y1]])
    grid = counts.T.astype(np.float32)
    grid[grid == 0] = np.nan
    return ((x_edges[:-1] + x_edges[1:]) / 2).astype(np.float32), \
        ((y_edges[:-1] + y_edges[1:]) / 2).astype(np.float32), grid


def inside_polygon(coords: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Even-odd rule (as plotly's lasso) for every row; only rows in the polygon's bounding box
    are tested edge by edge."""
    px, py = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    result = np.zeros(len(coords), dtype=bool)
    if len(px) < 3:
        return result
    box = MapWindow(px.min(), px.max(), py.min(), py.max())
    candidates = np.flatnonzero(box.contains(coords))
    x, y = coords[candidates, 0].astype(np.float64), coords[candidates, 1].astype(np.float64)
    inside = np.zeros(len(candidates), dtype=bool)
    for xa, ya, xb, yb in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
        if ya == yb:
            continue
        crosses = (ya > y) != (yb > y)
        inside ^= crosses & (x < xa + (y - ya) * (xb - xa) / (yb - ya))
    result[candidates] = inside
    return result


def selected_rows(coords: np.ndarray, selection: Mapping | None,
                  window: MapWindow | None = None) -> np.ndarray:
    """Every row (ascending positions) inside the boxes and lassos of a plotly selection event
    (Streamlit's `on_select` state or plotly's own), plus clicked points (`customdata` = row
    position); limited to `window`, the part of the map the user saw."""
    if not selection:
        return np.zeros(0, dtype=np.int64)
    state = selection.get("selection", selection)
    chosen = np.zeros(len(coords), dtype=bool)
    for box in state.get("box") or []:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        chosen |= MapWindow(x0, x1, y0, y1).contains(coords)
    for lasso in state.get("lasso") or []:
        chosen |= inside_polygon(coords, lasso["x"], lasso["y"])
    if not (state.get("box") or state.get("lasso")):  # clicked points only
        for point in state.get("points") or []:
            custom = point.get("customdata")
            if isinstance(custom, (list, tuple)):
                custom = custom[0] if custom else None
            if custom is not None:
                chosen[int(float(custom))] = True
    if window is not None:
        chosen &= window.contains(coords)
    return np.flatnonzero(chosen)
