"""`python -m api.cli`: the same as the `exportd` console script."""
import sys

from api.cli import main

sys.exit(main())
