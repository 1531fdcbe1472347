"""``python -m soa``: the soa command line."""

from soa.cli.main import main

if __name__ == "__main__":
    main()
