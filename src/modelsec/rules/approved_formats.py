from dataclasses import dataclass

from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, param

UNAPPROVED_FORMAT = threat(
    "MS-POL-001",
    "ApprovedFormats",
    Severity.MEDIUM,
    "Model file format not approved by the security group",
    "Convert the model to an approved format (safetensors for weights) or ask the group's "
    "owners to approve this format.",
)

UNREADABLE = "MS-GEN-004"  # modelsec.engine.UNREADABLE (importing the engine here would cycle)

# Formats that carry tensors and metadata only: no code path at load time.
DEFAULT_APPROVED = ("safetensors", "gguf", "onnx", "numpy-npy", "numpy-npz")


@dataclass(frozen=True, kw_only=True)
class ApprovedFormatsParams(RuleParams):
    """Parameters of ApprovedFormats: the formats models may use, and whether unknown ones pass."""

    approved_formats: list[str] = param(
        default_factory=lambda: list(DEFAULT_APPROVED),
        shown_default=list(DEFAULT_APPROVED),
        alias="approvedFormats",
        description="Format names (see `modelsec formats`) that models may use.",
    )
    allow_unknown: bool = param(
        default=False,
        alias="allowUnknown",
        description="Accept files whose format modelsec does not recognise.",
    )


class ApprovedFormats(Rule[ApprovedFormatsParams]):
    id = "ApprovedFormats"
    title = "Only approved model formats"
    description = (
        "Fails when a model file (or archive member) is in a format outside "
        "`approvedFormats`. Containers are looked through; configs and text are ignored."
    )
    Params = ApprovedFormatsParams
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: ApprovedFormatsParams) -> RuleOutcome:
        approved = set(params.approved_formats)
        records = given.report.all_formats()
        categories = {r.path: r.category for r in records}
        violations = []
        for record in records:
            # Parts of a model format (the pickle inside a PyTorch zip) are judged with it;
            # members of plain containers (zip, tar) are models in their own right.
            parent = record.path.rsplit("!", 1)[0] if "!" in record.path else None
            if parent is not None and categories.get(parent) == FormatCategory.MODEL:
                continue
            judged = record.category == FormatCategory.MODEL or (
                record.category == FormatCategory.UNKNOWN and not params.allow_unknown
            )
            if judged and record.format not in approved:
                violations.append(
                    UNAPPROVED_FORMAT.at(
                        record.path,
                        f"format {record.format!r} is not in approvedFormats "
                        f"({', '.join(sorted(approved)) or 'none'})",
                        subject=record.format,
                    )
                )
        if violations:
            kinds = sorted({v.subject or "" for v in violations})
            return RuleOutcome(RuleResult.FAILED, violations, f"unapproved format(s): {', '.join(kinds)}")
        # A path the engine could not read at all (no permission, a FIFO, a link loop) has
        # no format to approve: it could be a pickle. Fail closed, naming it.
        unread = [i for i in given.report.all_incompletes() if i.code == UNREADABLE]
        if unread:
            more = f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""
            return RuleOutcome(
                RuleResult.ERROR,
                message=f"format unknown, could not read {unread[0].describe()}{more}; failing closed",
            )
        return RuleOutcome(RuleResult.PASSED, message="all formats approved")


RULE = ApprovedFormats()
