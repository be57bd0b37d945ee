"""`python -m lookalike`: the same command line as the `lookalike` script."""

from lookalike.cli.app import main

if __name__ == "__main__":
    main()
