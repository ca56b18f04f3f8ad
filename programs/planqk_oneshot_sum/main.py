"""The starter program as a one-shot process, as a PlanQK Docker container would run it."""

import json

with open("/var/input/data.json") as f:
    data = json.load(f)
with open("/var/input/params.json") as f:
    params = json.load(f)

values = data.get("values", [])
total = 0
for value in values:
    total += value
    print("PlanQK:Job:InterimResult:", json.dumps({"sum": total}))
if params.get("round_off"):
    total = round(total)
print("PlanQK:Job:MultilineResult")
print(json.dumps({"sum": total, "count": len(values)}, indent=2))
print("PlanQK:Job:MultilineResult")
