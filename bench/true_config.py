"""Turns a bundle's config.json into the benchmarks' container: /bin/true without a terminal,
and with a memory limit in bytes when one is given.

Usage: true_config.py CONFIG [MEMORY_LIMIT]
"""
import json
import sys

path = sys.argv[1]
with open(path) as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = ["/bin/true"]
if len(sys.argv) > 2 and sys.argv[2]:
    cfg["linux"].setdefault("resources", {})["memory"] = {"limit": int(sys.argv[2])}
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
