"""Shared test worlds and helpers (imported as ``support.<module>``)."""
