"""Tables, figures and the self-contained HTML report of the clustering experiment.

The figures and the reading are derived from the tables alone (``tables/ari.csv``,
``tables/accuracy.csv``), never recomputed, so the report always says what the tables say.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment
from matplotlib.figure import Figure

from mossa.clustering.over_steps import ari_over_steps_figure, series
from mossa.io import atomic_write_bytes, atomic_write_text

SPLITS = ("train", "validation")
# Visual estimate of the source paper's final validation ARI at its higher layers (its Fig. 1b,
# as summarised in the project's seed document); the verdict compares the run's with it.
PAPER_ARI_ESTIMATE = 0.6
ARI_COLUMNS = ("step", "layer", "split", "position", "ari")
POSITION_NAMES = {
    "separator": "separator (<sep> after the instruction)",
    "last_word": "last instruction word",
    "input": "input token",
    "instruction_mean": "mean over the instruction words",
}
ACCURACY_COLUMNS = ("step", "split", "accuracy")


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Write rows (dicts keyed by ``columns``) as CSV, atomically; floats with 6 decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([f"{row[c]:.6f}" if isinstance(row[c], float) else row[c] for c in columns])
    atomic_write_text(path, buf.getvalue())


def read_ari(path: Path) -> list[dict]:
    """Rows of ``ari.csv`` with typed values."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {
                "step": int(r["step"]),
                "layer": int(r["layer"]),
                "split": r["split"],
                "position": r["position"],
                "ari": float(r["ari"]),
            }
            for r in csv.DictReader(fh)
        ]


def read_accuracy(path: Path) -> list[dict]:
    """Rows of ``accuracy.csv`` with typed values."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {"step": int(r["step"]), "split": r["split"], "accuracy": float(r["accuracy"])}
            for r in csv.DictReader(fh)
        ]


@dataclass(frozen=True)
class Finding:
    """Whether validation ARI at the deepest layer rose and ended clearly above layer 0.

    ``rise`` = final minus first-checkpoint ARI of the deepest layer; ``gap`` = final ARI of
    the deepest layer minus final ARI of layer 0; both must reach ``margin``. The size is
    compared with the paper's figure (``PAPER_ARI_ESTIMATE``) separately; the peak over the
    checkpoints is reported, since the curve need not rise monotonically.
    """

    position: str
    deepest_layer: int
    first_step: int
    final_step: int
    deepest_first: float
    deepest_final: float
    layer0_final: float
    margin: float
    peak_step: int
    deepest_peak: float

    @property
    def rise(self) -> float:
        return self.deepest_final - self.deepest_first

    @property
    def gap(self) -> float:
        return self.deepest_final - self.layer0_final

    @property
    def reproduced(self) -> bool:
        return self.rise >= self.margin and self.gap >= self.margin

    @property
    def paper_magnitude(self) -> bool:
        """Whether the final deepest-layer validation ARI reaches the paper's figure."""
        return self.deepest_final >= PAPER_ARI_ESTIMATE

    def sentence(self) -> str:
        """The reading in one plain sentence, numbers included."""
        numbers = (
            f"validation ARI of the {POSITION_NAMES[self.position]} state at layer "
            f"{self.deepest_layer} (deepest) went from {self.deepest_first:.3f} at step "
            f"{self.first_step} to {self.deepest_final:.3f} at step {self.final_step} (rise "
            f"{self.rise:+.3f}; highest {self.deepest_peak:.3f} at step {self.peak_step}); "
            f"layer 0 ended at {self.layer0_final:.3f} (gap "
            f"{self.gap:+.3f}); required margin {self.margin:.2f}; the paper's figure shows "
            f"about {PAPER_ARI_ESTIMATE} or more at its higher layers."
        )
        if not self.reproduced:
            return "The finding did NOT reproduce in this run: " + numbers
        if self.paper_magnitude:
            return "The finding reproduced, at the paper's magnitude: " + numbers
        return "The finding reproduced in direction but below the paper's magnitude: " + numbers


def read_finding(ari_rows: list[dict], margin: float, position: str) -> Finding:
    """Apply the reading rule to the validation rows of ``position`` in the ARI table."""
    deepest = max(r["layer"] for r in ari_rows)
    steps, deep = series(ari_rows, split="validation", layer=deepest, position=position)
    _, layer0 = series(ari_rows, split="validation", layer=0, position=position)
    if not steps:
        raise ValueError(f"the ARI table has no validation rows at position {position!r}")
    peak = max(range(len(steps)), key=lambda i: deep[i])
    return Finding(
        position,
        deepest,
        steps[0],
        steps[-1],
        deep[0],
        deep[-1],
        layer0[-1],
        margin,
        steps[peak],
        deep[peak],
    )


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def ari_figure(ari_rows: list[dict], position: str) -> bytes:
    """PNG: ARI at ``position`` against training step, one line per layer, per split."""
    return ari_over_steps_figure(
        ari_rows,
        splits=SPLITS,
        title=f"Task clustering of hidden states at the {POSITION_NAMES[position]}",
        ylabel="ARI of k-means (k = tasks) vs task labels",
        position=position,
    )


def accuracy_figure(accuracy_rows: list[dict]) -> bytes:
    """PNG: output-token accuracy against training step, train and validation."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for split, style in zip(SPLITS, ("-o", "--s"), strict=True):
        picked = sorted((r["step"], r["accuracy"]) for r in accuracy_rows if r["split"] == split)
        ax.plot([s for s, _ in picked], [a for _, a in picked], style, ms=3.5, label=split)
    ax.set_xlabel("training step")
    ax.set_ylabel("output-token accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _png(fig)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>mossa clustering: {{ name }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: right; }
.verdict { font-size: 1.1em; padding: 0.6em 1em; background: #f7f7f7;
  border-left: 5px solid {{ colour }}; }
img { max-width: 100%; }
code { background: #f2f2f2; padding: 0 3px; }
</style></head><body>
<h1>Task clustering during training: {{ name }}</h1>
<p class="verdict">{{ finding.sentence() }}</p>
<p>Question (Wu &amp; Varshney, NAACL Findings 2025): does a causal LM trained from scratch on
many instruction tasks organise its hidden states by task, from which layer and from which
training step on? Finding to reproduce: validation ARI at the deepest layer rises over
training and ends clearly (by at least {{ "%.2f"|format(finding.margin) }}) above layer 0's.</p>
<h2>ARI per layer and step ({{ position_name }})</h2>
<img alt="ARI against training step per layer" src="data:image/png;base64,{{ ari_png }}">
<h2>Final ARI per layer (step {{ finding.final_step }}, {{ position_name }})</h2>
<table><tr><th>layer</th>{% for s in splits %}<th>{{ s }}</th>{% endfor %}</tr>
{% for layer, values in final_ari %}<tr><td>{{ layer }}</td>
{% for v in values %}<td>{{ "%.3f"|format(v) }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p>Best validation layer at the final step: {{ best_layer }}
(ARI {{ "%.3f"|format(best_value) }}); the source paper's figure suggests a final validation
ARI above about {{ paper_ari }} at its higher layers.</p>
{% if by_position|length > 1 %}<h2>Final validation ARI per layer and position (step
{{ finding.final_step }})</h2>
<table><tr><th>position</th>{% for layer in layers %}<th>layer {{ layer }}</th>{% endfor %}</tr>
{% for name, values in by_position %}<tr><td>{{ name }}</td>
{% for v in values %}<td>{{ "%.3f"|format(v) }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endif %}
<h2>Output-token accuracy</h2>
<img alt="accuracy against training step" src="data:image/png;base64,{{ accuracy_png }}">
<table><tr><th>step</th>{% for s in splits %}<th>{{ s }}</th>{% endfor %}</tr>
{% for step, values in accuracy %}<tr><td>{{ step }}</td>
{% for v in values %}<td>{{ "%.3f"|format(v) }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Setup</h2>
<ul>
<li>{{ setup }}</li>
<li>Hidden state clustered: {{ position_name }} (<code>analysis.position</code>). Layer 0 is
the embedding output; layer {{ finding.deepest_layer }} is the last block's output after the
final LayerNorm <code>ln_f</code> (what the LM head reads).</li>
<li>k-means with k = number of tasks on the raw states; Adjusted Rand Index against the task
labels (1 = clusters are the tasks, about 0 = chance).</li>
<li>Wall time: {{ wall_time }}. Tables: <code>tables/ari.csv</code>,
<code>tables/accuracy.csv</code>; resolved config: <code>config.resolved.yaml</code>.</li>
</ul>
</body></html>
"""


def write_report(
    out_dir: Path, *, name: str, position: str, margin: float, setup: str, wall_time: str
) -> Finding:
    """From the tables in ``out_dir``, write the figures and ``report.html``; return the reading.

    ``position`` is the clustered state the figure and the verdict use; other positions in
    the ARI table get a table of their final validation ARI.
    """
    out_dir = Path(out_dir)
    ari_rows = read_ari(out_dir / "tables" / "ari.csv")
    accuracy_rows = read_accuracy(out_dir / "tables" / "accuracy.csv")
    finding = read_finding(ari_rows, margin, position)
    ari_png, accuracy_png = ari_figure(ari_rows, position), accuracy_figure(accuracy_rows)
    atomic_write_bytes(out_dir / "figures" / "ari.png", ari_png)
    atomic_write_bytes(out_dir / "figures" / "accuracy.png", accuracy_png)
    final = {
        (r["split"], r["layer"], r["position"]): r["ari"]
        for r in ari_rows
        if r["step"] == finding.final_step
    }
    layers = sorted({r["layer"] for r in ari_rows})
    positions = [position, *sorted({r["position"] for r in ari_rows} - {position})]
    best_layer = max(layers, key=lambda layer: final[("validation", layer, position)])
    accuracy = {(r["step"], r["split"]): r["accuracy"] for r in accuracy_rows}
    html = (
        Environment(autoescape=True)
        .from_string(_TEMPLATE)
        .render(
            name=name,
            finding=finding,
            colour="#2a7" if finding.reproduced else "#c33",
            splits=SPLITS,
            ari_png=base64.b64encode(ari_png).decode("ascii"),
            accuracy_png=base64.b64encode(accuracy_png).decode("ascii"),
            position_name=POSITION_NAMES[position],
            final_ari=[(layer, [final[(s, layer, position)] for s in SPLITS]) for layer in layers],
            best_layer=best_layer,
            best_value=final[("validation", best_layer, position)],
            layers=layers,
            by_position=[
                (POSITION_NAMES[p], [final[("validation", layer, p)] for layer in layers])
                for p in positions
            ],
            paper_ari=PAPER_ARI_ESTIMATE,
            accuracy=[
                (step, [accuracy[(step, s)] for s in SPLITS])
                for step in sorted({r["step"] for r in accuracy_rows})
            ],
            setup=setup,
            wall_time=wall_time,
        )
    )
    atomic_write_text(out_dir / "report.html", html)
    return finding
