"""What a web worker holds in memory: modules only commands or a few pages need stay out of it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Imported by the commands and pages that use them (migrations, the scheduler, Excel exports,
# QR posters and codes, the triage model), never by building the app.
ON_DEMAND = ("alembic", "mako", "pygments", "apscheduler", "tzlocal", "openpyxl", "numpy", "qrcode", "PIL",
             "lxml", "sklearn", "scipy", "pkg_resources")

PROBE = """
import json, sys
import wsgi
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"loaded": sorted(m for m in %r if m in sys.modules), "rss_mb": rss / 1024,
                  "jieba": "jieba" in sys.modules, "webhook": "bot.webhook" in sys.modules}))
"""


def test_building_the_web_app_leaves_out_what_only_commands_and_some_pages_need(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDSTEWARD_")}
    env["REDSTEWARD_DATABASE_URL"] = f"sqlite:///{tmp_path}/imports.sqlite3"
    done = subprocess.run([sys.executable, "-c", PROBE % (ON_DEMAND,)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["webhook"] and found["jieba"], found  # the app was built, segmenter and all
    assert found["loaded"] == [], f"imported when the app is built: {found['loaded']}"
    # The whole app with its dictionary, before any message: well under the 150 MB a worker may
    # reach after 100,000 messages (it was 210 MB while every module above was imported).
    assert found["rss_mb"] < 130, found
