"""``python -m lrlab``: the same as the ``lrlab`` command."""

from lrlab.cli import main

main()
