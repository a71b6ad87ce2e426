"""Runs REDbot (https://redbot.org, PyPI `redbot`) on one URL and prints its notes as JSON.

    python redbot_check.py URL [HEADER ...]      e.g. "Range: bytes=0-99"

REDbot's own CLI (`redbot -o har URL`) takes no request headers; this is the same code path
(redbot.cli.main) with `set_request(url, headers=...)`, so a range request or a request with
Accept-Encoding can be linted too. Output: one JSON object,
{"status": 200, "notes": [{"level": "WARN", "id": "...", "summary": "...", "subject": "..."}]},
subnotes flattened after their note. REDbot's levels are GOOD, INFO, WARN and BAD.
"""

import json
import sys
from configparser import ConfigParser

import thor
from redbot.resource import HttpResource


def flatten(note, out):
    out.append(
        {
            "level": note.level.name,
            "id": note.__class__.__name__,
            "summary": note.summary,
            "subject": note.subject,
        }
    )
    for sub in note.subnotes or []:
        flatten(sub, out)


def main():
    url = sys.argv[1]
    headers = [tuple(h.split(": ", 1)) for h in sys.argv[2:]]
    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(parser["redbot"], descend=False)
    resource.set_request(url, headers=headers)

    @thor.events.on(resource)
    def check_done():
        thor.stop()

    resource.check()
    thor.run()
    notes = []
    for note in resource.response.notes:
        flatten(note, notes)
    error = resource.fetch_error.desc if resource.fetch_error else None
    json.dump({"status": resource.response.status_code, "error": error, "notes": notes}, sys.stdout)


if __name__ == "__main__":
    main()
