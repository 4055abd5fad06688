"""``python -m bioleaf`` (what ``torchrun -m bioleaf`` runs)."""

import sys

from .cli import main

sys.exit(main())
