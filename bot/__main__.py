"""`python -m bot` runs the `mimi` command line."""

import sys

from bot.cli import main

sys.exit(main())
