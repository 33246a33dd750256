"""The one figure helper: a matplotlib figure that is saved and closed on exit, with no GUI backend.

It uses matplotlib's object-oriented ``Figure`` directly (never ``pyplot``), so it touches no global
backend state, works headless and leaks no figures.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "curve.png"
    >>> with figure(path, title="loss") as ax:
    ...     _ = ax.plot([3, 2, 1.5], label="train")
    >>> path.exists()
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def figure(path: str | Path, *, nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None,
           title: str | None = None, dpi: int = 120, legend: bool = True, **subplot_kw: Any) -> Iterator[Any]:
    """Yield the axes (one ``Axes``, or an array of them for a grid), then save the figure to ``path``.

    Args:
        path: output file; its suffix picks the format (``.png``, ``.svg``, ``.pdf``). Folders are created.
        nrows, ncols: subplot grid.
        figsize: inches; default 5 x 3.5 per panel.
        title: figure title.
        dpi: resolution for raster formats.
        legend: add a legend to every panel that has labelled artists.
        subplot_kw: passed to ``Figure.subplots`` (e.g. ``sharex=True``).
    """
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=figsize or (5.0 * ncols, 3.5 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    yield axes
    if title:
        fig.suptitle(title)
    if legend:
        for ax in fig.axes:
            if ax.get_legend_handles_labels()[1]:
                ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
