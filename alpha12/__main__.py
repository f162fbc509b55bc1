"""Entry point for `python -m alpha12`."""

import sys

from alpha12.cli import main

sys.exit(main())
