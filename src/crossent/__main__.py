"""`python -m crossent`: the same as the `crossent` command."""

from crossent.cli import main

main()
