"""awslambdaric started the way the managed Python runtime starts it: its modules (and so logging,
traceback and the rest) are imported first, then the function's folder goes first on `sys.path`.

Run as `python -m awslambdaric_managed HANDLER` with this folder on PYTHONPATH.
"""

import os
import sys

from awslambdaric import __main__ as stock_main

sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
stock_main.main(sys.argv)
