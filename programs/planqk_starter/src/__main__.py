"""Run the program locally as PlanQK's template does: `python -m src` with input/*.json."""

import json
import os

from .program import run

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(here, "input", "data.json")) as f:
    data = json.load(f)
with open(os.path.join(here, "input", "params.json")) as f:
    params = json.load(f)
print(json.dumps(run(data=data, params=params), default=lambda o: o.__dict__, indent=2))
