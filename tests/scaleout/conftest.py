"""Fixtures for the scale-out tests: the GCS emulator of the reuse tests."""

from __future__ import annotations

from tests.reuse.conftest import GCS_BUCKET, emulator_env, gcs_emulator

__all__ = ["GCS_BUCKET", "emulator_env", "gcs_emulator"]
