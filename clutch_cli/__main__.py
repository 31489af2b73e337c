"""`python -m clutch_cli` is the `clutch` command (torchrun uses this form)."""
import sys

from clutch_cli import main

sys.exit(main())
