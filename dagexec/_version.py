"""The version of dagexec, in a module of its own that imports nothing.

The package root re-exports it as ``dagexec.__version__``; the modules that record it
(artifact headers, code hashes of dagexec's own functions) and the CLI read it from
here, so none of them imports the package root.  ``pyproject.toml`` reads it from here
too, so this is the one place to change it.
"""

__version__ = "0.1.0"
