"""``python -m dagexec``: the command line (see :mod:`dagexec.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
