"""``python -m bench.baseline``: see run.py (kept import-light: spawned workers import this module again)."""

from .run import main

if __name__ == "__main__":
    main()
