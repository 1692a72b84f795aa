"""`python -m mossa.cli`: the mossa command."""

from mossa.cli import main

main()
