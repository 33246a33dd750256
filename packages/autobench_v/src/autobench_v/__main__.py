import sys

from autobench_v.cli import main

sys.exit(main())
