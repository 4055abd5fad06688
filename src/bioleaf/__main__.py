"""``python -m bioleaf`` (what ``torchrun -m bioleaf`` runs)."""

import sys

from bioleaf.cli import main

sys.exit(main())
