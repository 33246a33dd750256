import sys

from papercommon.reproduce import main

sys.exit(main())
