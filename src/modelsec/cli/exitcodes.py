"""Process exit codes, part of the CLI's contract (CI pipelines branch on them)."""

OK = 0
BLOCKED = 1
ERROR = 2
USAGE = 4

# Keyed by Outcome value so that importing this module stays cheap.
FOR_OUTCOME = {"ALLOWED": OK, "BLOCKED": BLOCKED, "ERROR": ERROR}
