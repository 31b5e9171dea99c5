"""``python -m ivl3_plugin``: the same as the ``ivl3`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
