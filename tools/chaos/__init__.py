"""Fault injection through the public CLI (``make chaos``): each case builds a small simulated
home, breaks something the way the field does (bad files, outages, archived files, concurrent and
killed runs, corrupt models, failing webhooks), runs ``refrig`` as a user would and reports the
outcome and how many readings were lost (always 0 when the project holds its promise)."""
