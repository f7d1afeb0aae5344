"""Command-line interface (filled in below)."""


def main(argv=None):
    raise SystemExit("nmmval: not yet")
