"""``python -m bioleaf.tools.bench``: the bench without the ``bioleaf`` command, or one memory probe
(:func:`bioleaf.tools.bench.report.main`)."""

import sys

from bioleaf.tools.bench.report import main

sys.exit(main())
