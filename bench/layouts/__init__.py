"""Cache layouts: how the server caches what FULL and FORWARD epochs send, and how CACHED epochs
read it (the contract and the LAYOUTS registry: bench/layouts/layout.py; the built-in layouts
register when LAYOUTS is first asked for a name).

    per-batch   per_batch.py: each batch as received, in cache_views views (the default)
    per-sample  per_sample.py: decoded activations per sample; a FORWARD epoch resends only the
                samples that moved (RunConfig.refresh_threshold)
    replay.py   what a CACHED epoch trains on, and the cache's regularisers (mixup, noise)
    testing.py  the conformance kit every registered layout passes
"""

from bench.layouts.layout import LAYOUTS, ClientHalf, Layout, ServerHalf
from bench.layouts.replay import Regularisers, Replay

__all__ = ["LAYOUTS", "ClientHalf", "Layout", "Regularisers", "Replay", "ServerHalf", "layout_of"]


def layout_of(cfg) -> type[Layout]:
    """The layout run `cfg` uses: per sample when it sets refresh_threshold, else per batch. The one
    place a run's layout is chosen."""
    return LAYOUTS.get("per-batch" if cfg.refresh_threshold is None else "per-sample")
