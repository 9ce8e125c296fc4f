"""The test bed's model host: `python -m tests.multihost.model HOST PORT` serves the fake
model (tests/fake_llm.py) until it is killed."""
from __future__ import annotations

import sys
import threading

from tests.fake_llm import FakeLLM

if __name__ == "__main__":
    llm = FakeLLM(sys.argv[1], int(sys.argv[2]))
    print(f"fake model on {llm.url}", flush=True)
    threading.Event().wait()
