"""`mossa report`: figures in RUN/figures and the self-contained RUN/report.html."""

from __future__ import annotations

import warnings
from pathlib import Path

from mossa.config import RunConfig
from mossa.report.data import load_run_data
from mossa.report.figures import render_figures
from mossa.report.html import render_html
from mossa.store import atomic_write_text


def run_report(run_dir: Path, cfg: RunConfig) -> Path:
    """Draw every figure from RUN/tables and write RUN/report.html; returns its path."""
    run_dir = Path(run_dir)
    with warnings.catch_warnings():
        # An undefined CKA (a layer whose states do not vary, typically the embedding of a
        # shared last token) is NaN in the tables; medians and means over it are NaN and
        # shown as "n/a". numpy's all-NaN warnings would only repeat that.
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        data = load_run_data(run_dir, cfg)
        paths = render_figures(data, run_dir / "figures")
        html = render_html(data, paths)
    report = run_dir / "report.html"
    atomic_write_text(report, html)
    return report
