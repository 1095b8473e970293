"""Importers: turn a third party's export into canonical landing files the ingest loads."""
