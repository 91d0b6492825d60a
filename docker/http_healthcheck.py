"""Container HEALTHCHECK of an HTTP service: GET http://127.0.0.1:PORT/PATH must answer 2xx.

Usage: python /usr/local/bin/http_healthcheck.py PORT [PATH]
"""

import sys
import urllib.request

port = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "/"
with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
    sys.exit(0 if 200 <= reply.status < 300 else 1)
