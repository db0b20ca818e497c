"""`python -m edgebert.train ...` and `accelerate launch -m edgebert.train ...`: `edgebert train ...`.

An entry point, like cli.py itself: the only module of this package that may import the CLI.
"""

import sys

from edgebert.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
