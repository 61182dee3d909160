"""``python -m glomsim.cli`` runs the ``glomsim`` command."""

import sys

from glomsim.cli import main

sys.exit(main())
