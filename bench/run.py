"""Run every benchmark and print its figures (`make bench`)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("critical_path.py", "startup.py", "sip2_codec.py", "sip2_roundtrip.py", "card_readers.py", "barcodes.py",
               "outbox_drain.py", "io_per_checkout.py", "locks.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
