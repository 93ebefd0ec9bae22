"""The large map: what the browser draws, that it travels as typed arrays, and that selections
are resolved on every row, not on the drawn subset."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import plotly.io as pio

from selection_core.viz.figures import cluster_map
from selection_core.viz.map_view import MapWindow, density_grid, draw_priority, inside_polygon, \
    selected_rows, visible_rows


def coords_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)


def test_a_view_draws_a_capped_stable_subset_and_every_row_on_zoom() -> None:
    coords = coords_of(20_000)
    priority = draw_priority(len(coords), seed=3)
    drawn, held = visible_rows(coords, None, priority, limit=1_000)
    assert held == 20_000 and len(drawn) == 1_000 and np.all(np.diff(drawn) > 0)
    assert set(drawn) == set(np.argsort(priority)[:1_000])  # the lowest-ranked rows
    window = MapWindow(-0.5, 0.5, -0.5, 0.5)
    zoomed, held = visible_rows(coords, window, priority, limit=1_000)
    inside = np.flatnonzero(window.contains(coords))
    assert held == len(inside) and set(zoomed) <= set(inside)
    assert set(drawn) & set(inside) <= set(zoomed)  # zooming in only adds points
    small = MapWindow(-0.1, 0.1, -0.1, 0.1)
    every, held = visible_rows(coords, small, priority, limit=1_000)
    assert held < 1_000 and list(every) == list(np.flatnonzero(small.contains(coords)))


def naive_inside(x: float, y: float, xs: list[float], ys: list[float]) -> bool:
    inside = False
    for i in range(len(xs)):
        xa, ya, xb, yb = xs[i], ys[i], xs[i - 1], ys[i - 1]
        if (ya > y) != (yb > y) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


def test_lasso_and_box_select_every_row_inside_not_only_drawn_ones() -> None:
    coords = coords_of(3_000, seed=1)
    xs, ys = [-1.0, 1.5, 0.2, 1.0, -1.2], [-1.0, -0.5, 0.1, 1.2, 0.8]  # not convex
    expected = [naive_inside(float(x), float(y), xs, ys) for x, y in coords]
    assert np.array_equal(inside_polygon(coords, xs, ys), expected)
    event = {"selection": {"points": [{"customdata": 7}], "point_indices": [0],
                           "box": [{"x": [0.5, -0.5], "y": [-0.25, 0.25]}],
                           "lasso": [{"x": xs, "y": ys}]}}
    box = (np.abs(coords[:, 0]) <= 0.5) & (np.abs(coords[:, 1]) <= 0.25)
    assert list(selected_rows(coords, event)) == list(np.flatnonzero(box | np.array(expected)))
    window = MapWindow(0.0, 5.0, -5.0, 5.0)
    limited = selected_rows(coords, event, window)
    assert list(limited) == list(np.flatnonzero((box | np.array(expected)) & (coords[:, 0] >= 0)))


def test_a_large_map_sends_typed_arrays_not_json_number_lists() -> None:
    n = 40_000
    coords = coords_of(n, seed=2)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "id": [f"r{i}" for i in range(n)],
                          "prompt": ["a prompt"] * n, "cluster": rng.integers(0, 300, n),
                          "quality": rng.random(n), "row": np.arange(n) * 25})
    density = density_grid(coords, MapWindow.around(coords))
    assert np.nansum(density[2]) == n
    for colour in ("cluster", "quality"):
        spec = pio.to_json(cluster_map(frame, colour, density=density), validate=False)
        # no list of more than 50 numbers anywhere: coordinates, rows, colours and the density
        # grid all travel as base64 typed arrays
        longest = max((len(m.group(0).split(",")) for m in re.finditer(
            r"\[(?:-?[\d.eE+-]+|null)(?:,(?:-?[\d.eE+-]+|null)){50,}\]", spec)), default=0)
        assert longest == 0, f"a JSON list of {longest} numbers"
        data = json.loads(spec)["data"]
        points = [t for t in data if t["type"] == "scattergl"]
        assert all(t["x"]["dtype"] == "f4" and t["customdata"]["dtype"] == "i4" for t in points)
        rows = np.concatenate([np.frombuffer(base64.b64decode(t["customdata"]["bdata"]),
                                             dtype=np.int32) for t in points])
        assert np.array_equal(np.sort(rows), frame["row"].to_numpy())
        assert next(t for t in data if t["type"] == "heatmap")["z"]["dtype"] == "f4"
