"""``python -m modelsec_webhook``: the webhook without the rest of the CLI."""

import sys

from modelsec_webhook.command import main

sys.exit(main())
