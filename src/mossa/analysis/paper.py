"""Facts of the "Layer by Layer" paper the analysis and report compare against (one place).

Llama 2 7B has 32 layers; the paper's map is shared 1-9, transition 10-15, refinement
16-32, and its t-SNE figures show layers 1, 10, 15, 20 and 32. Other depths get these
scaled by ``n_layers / 32``.
"""

from __future__ import annotations

import math

from mossa.analysis.layer_map import LayerGroups, Span

PAPER_DEPTH = 32
PAPER_GROUPS = {"shared": (1, 9), "transition": (10, 15), "refinement": (16, 32)}
PAPER_TSNE_LAYERS = (1, 10, 15, 20, 32)


def scale_layer(layer: int, n_layers: int) -> int:
    """A layer of the paper's 32 moved to the same relative depth of ``n_layers`` (>= 1)."""
    return max(1, math.floor(layer * n_layers / PAPER_DEPTH + 0.5))


def paper_groups(n_layers: int) -> LayerGroups | None:
    """The paper's map scaled to ``n_layers`` layers; None below 3 layers (no room for three)."""
    if n_layers < 3:
        return None
    shared_end = scale_layer(PAPER_GROUPS["shared"][1], n_layers)
    transition_end = max(shared_end + 1, scale_layer(PAPER_GROUPS["transition"][1], n_layers))
    transition_end = min(transition_end, n_layers - 1)
    shared_end = min(shared_end, transition_end - 1)
    return LayerGroups(
        shared=Span(1, shared_end),
        transition=Span(shared_end + 1, transition_end),
        refinement=Span(transition_end + 1, n_layers),
    )
