"""Base models: resolve a spec to a local directory, load model and tokenizer.

Specs: ``tiny`` (pretrained by mossa, cached), ``gemma-3-270m`` (optional extra, converted
once), ``random:<preset>`` (test models), a local Hugging Face directory, or a hub name.
See docs/models.md.
"""

from mossa.models.cache import cache_root
from mossa.models.catalog import BundledModel, bundled_models
from mossa.models.loading import load_base, load_tokenizer, meta_model, num_layers, resolve_base
from mossa.models.presets import PRESETS
from mossa.models.tiny import TinyBuild, TinyConfig, build_tiny

__all__ = [
    "PRESETS",
    "BundledModel",
    "TinyBuild",
    "TinyConfig",
    "build_tiny",
    "bundled_models",
    "cache_root",
    "load_base",
    "load_tokenizer",
    "meta_model",
    "num_layers",
    "resolve_base",
]
