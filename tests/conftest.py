import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The whole suite runs offline, as the artifact promises.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def conversation(cid, *turns):
    """A ShareGPT record from (role, text) pairs."""
    return {"id": cid, "conversations": [{"from": r, "value": t} for r, t in turns]}


@pytest.fixture
def write_array(tmp_path):
    def write(records, name="data.json"):
        path = tmp_path / name
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
        return path

    return write


@pytest.fixture
def published():
    return json.loads((ROOT / "results" / "published.json").read_text())
