"""``python -m modelsec_operator``: the same as ``modelsec operator``."""

import sys

from modelsec_operator.command import main

sys.exit(main())
