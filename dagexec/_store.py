"""Moved: the cache store lives in ``dagexec/cache/store.py``; the names below stay importable from here."""

from .cache.store import FORMAT_VERSION, MAGIC, CacheEntry, CacheStore, key_problem

__all__ = ["FORMAT_VERSION", "MAGIC", "CacheEntry", "CacheStore", "key_problem"]
