"""The cache of runs (DESIGN §7), one module per concern.

``keys`` computes cache keys from a plan and its inputs; ``decide`` says what a run
with a cache runs, loads and why; ``store`` is the on-disk store of values (its file
format is described there); ``journal`` records a run's trials so that a killed run
can resume; ``diff`` compares the keys of two plans.  They log on ``dagexec.cache``.
Nothing is imported here, so that importing one module loads only what it needs.
"""
