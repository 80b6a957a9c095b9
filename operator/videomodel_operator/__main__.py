"""``python -m videomodel_operator`` runs the operator (same as ``videomodel-operator``)."""

import sys

from .main import main

sys.exit(main())
