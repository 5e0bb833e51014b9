"""A module that ends the process while it is being imported."""

import sys

sys.exit(7)
