"""``python -m abcn_hw`` is ``abcn-hw``."""
import sys

from abcn_hw.cli import main

sys.exit(main())
