"""Regenerate the golden compiled DAGs: ``python -m tests.golden`` (repository root)."""

from __future__ import annotations

from tests.golden import CONFIGS, compile_config, render

for config, golden in CONFIGS.items():
    golden.write_text(render(compile_config(config), config))
    print(f"wrote {golden}")
