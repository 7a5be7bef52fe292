"""`python -m solvent` runs the command line."""

from solvent.cli import main

if __name__ == "__main__":  # not when a worker process (solvent prove's hashing) imports the main module
    main()
