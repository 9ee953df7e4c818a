"""Moved: run journals live in ``dagexec/cache/journal.py``; the names below stay importable from here."""

from .cache.journal import Journal, JournalWriter, earlier_trials, journal_name

__all__ = ["Journal", "JournalWriter", "earlier_trials", "journal_name"]
