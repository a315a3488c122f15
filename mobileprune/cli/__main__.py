"""`python -m mobileprune.cli ...`: the same as the `mobileprune` command."""
import sys

from . import main

sys.exit(main())
