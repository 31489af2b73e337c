import sys

from clutch_core.cli import main

sys.exit(main())
