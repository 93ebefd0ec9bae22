"""`python -m selection_core …` — see `selection_core.cli`."""
import sys

from .cli import main

sys.exit(main())
