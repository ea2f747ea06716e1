"""``python -m servefit``."""

import sys

from servefit.cli import main

sys.exit(main())
