"""`python -m deckchat ...` runs the same CLI as the `deckchat` script."""
from .cli import main

main()
