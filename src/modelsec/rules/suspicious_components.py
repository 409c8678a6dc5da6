from modelsec.rules.base import Rule


class SuspiciousComponents(Rule):
    id = "SuspiciousComponents"
    title = "Suspicious or malformed components"
    description = (
        "Fails on what is not known to be code execution but has no place in a model: "
        "callables outside the allowlist that the file invokes, archive tricks (path "
        "traversal, links out of the tree, bombs, header mismatches), malformed files, "
        "file and network operators in graphs, external data outside the model."
    )


RULE = SuspiciousComponents()
