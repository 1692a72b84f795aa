"""The bundled base models and whether each is already in the cache (``mossa models``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mossa.models import gemma, presets, tiny
from mossa.models.cache import cache_root


@dataclass(frozen=True)
class BundledModel:
    """A bundled base model spec, its cache entry (if any) and a one-line description."""

    spec: str
    description: str
    path: Path | None  # cache entry, whether or not it exists yet; None if it cannot exist
    note: str = ""

    @property
    def cached(self) -> bool:
        return self.path is not None and self.path.is_dir()


def bundled_models(cache_dir: Path | None = None) -> list[BundledModel]:
    """Every bundled spec with its would-be cache path in ``cache_dir`` (default cache_root)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    default = tiny.TinyConfig()
    models = [
        BundledModel(
            "tiny",
            f"Llama, {default.n_layers} layers, hidden {default.hidden_size}, "
            f"vocab {default.vocab_size}; pretrained by `mossa pretrain`",
            root / tiny.entry_name(default),
        )
    ]
    if gemma.is_installed():
        models.append(
            BundledModel(gemma.SPEC, "Gemma 3 270M base, from GGUF", root / gemma.entry_name())
        )
    else:
        models.append(
            BundledModel(gemma.SPEC, "Gemma 3 270M base, from GGUF", None, "run make setup-gemma")
        )
    for name, preset in presets.PRESETS.items():
        layers = preset.make_config().num_hidden_layers
        models.append(
            BundledModel(
                f"random:{name}",
                f"random {preset.model_class}, {layers} layers (tests)",
                root / presets.entry_name(name),
            )
        )
    for name, preset in presets.SHAPED.items():
        c = preset.make_config()
        models.append(
            BundledModel(
                f"random:{name}",
                f"random {preset.model_class}, {c.num_hidden_layers} layers, hidden "
                f"{c.hidden_size}: real shape, weights made at load (speed and memory)",
                root / presets.entry_name(name),
            )
        )
    return models
