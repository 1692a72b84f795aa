"""`mossa report`: figures in RUN/figures and the self-contained RUN/report.html."""

from __future__ import annotations

from pathlib import Path

from mossa.analysis.tables import quiet_nan_aggregates
from mossa.config import RunConfig
from mossa.io import atomic_write_text, remove_temp_files
from mossa.report.data import load_run_data
from mossa.report.figures import render_figures
from mossa.report.html import render_html
from mossa.run_dir import RunDir


def run_report(run_dir: Path, cfg: RunConfig) -> Path:
    """Draw every figure from RUN/tables and write RUN/report.html; returns its path."""
    run = RunDir(run_dir)
    remove_temp_files(run.figures_dir)  # left by a killed earlier report
    with quiet_nan_aggregates():
        data = load_run_data(run.root, cfg)
        paths = render_figures(data, run.figures_dir)
        html = render_html(data, paths)
    atomic_write_text(run.report, html)
    return run.report


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The report stage."""
    run_report(run_dir, cfg)
