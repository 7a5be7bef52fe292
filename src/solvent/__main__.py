"""`python -m solvent` runs the command line."""

from solvent.cli import main

main()
