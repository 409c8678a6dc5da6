import posixpath
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, param

UNAPPROVED_LOCATION = threat(
    "MS-POL-002",
    "ApprovedLocation",
    Severity.HIGH,
    "Model comes from a location the security group does not approve",
    "Publish the model to an approved location (see the group's approvedLocations).",
)


def normalise(location: str) -> tuple[str, str, str]:
    """(scheme, authority, path) with plain paths taken as file:// URIs and the path
    normalised so that prefix checks work on whole components."""
    if "://" not in location:
        return "file", "", _clean(location)
    parts = urlsplit(location)
    return parts.scheme.lower(), parts.netloc.lower(), _clean(parts.path)


def _clean(path: str) -> str:
    # normpath folds `..` so that /models/team/../other is not under /models/team; POSIX
    # keeps a leading `//`, which we fold too.
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def within(location: str, prefix: str) -> bool:
    scheme, host, path = normalise(location)
    p_scheme, p_host, p_path = normalise(prefix)
    if (scheme, host) != (p_scheme, p_host):
        return False
    return path == p_path or PurePosixPath(path).is_relative_to(PurePosixPath(p_path))


@dataclass(frozen=True, kw_only=True)
class ApprovedLocationParams(RuleParams):
    """Parameters of ApprovedLocation: the path or URI prefixes models may come from."""

    approved_locations: list[str] = param(
        default_factory=list,
        alias="approvedLocations",
        description="Path or URI prefixes (/models, file:///models, s3://bucket/prefix, "
        "hf://org). Matched on whole path components.",
    )


class ApprovedLocation(Rule[ApprovedLocationParams]):
    id = "ApprovedLocation"
    title = "Models only from approved locations"
    description = (
        "Fails when the model's location is not under one of `approvedLocations`. With no "
        "locations configured nothing is approved (fail closed)."
    )
    Params = ApprovedLocationParams
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: ApprovedLocationParams) -> RuleOutcome:
        locations = given.report.locations or [given.report.target]
        bad = [
            loc for loc in locations if not any(within(loc, prefix) for prefix in params.approved_locations)
        ]
        if not bad:
            return RuleOutcome(RuleResult.PASSED, message="location approved")
        allowed = ", ".join(params.approved_locations) or "none configured: failing closed"
        violations = [
            UNAPPROVED_LOCATION.at(loc, f"{loc} is not under an approved location ({allowed})", subject=loc)
            for loc in bad
        ]
        return RuleOutcome(RuleResult.FAILED, violations, f"not an approved location: {bad[0]}")


RULE = ApprovedLocation()
