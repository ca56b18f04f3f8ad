"""`python -m qrt_cli` is the `qrt` command."""

import sys

from .main import main

sys.exit(main())
