"""Make the fault-injection servers in this folder importable as `fault_servers`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
