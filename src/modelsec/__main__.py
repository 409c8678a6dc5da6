import sys

from modelsec.cli.main import main

sys.exit(main())
