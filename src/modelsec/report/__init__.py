"""Renderings of scan results: JSON (machines, stable), SARIF 2.1.0 (code scanning), table (people)."""

from __future__ import annotations

from dataclasses import dataclass

from modelsec.policy import SecurityGroup, Verdict
from modelsec.sources import ScannedModel


@dataclass
class ModelResult:
    """One model's scan and the verdict of the group applied to it."""

    scanned: ScannedModel
    verdict: Verdict


@dataclass
class RunResult:
    """A whole ``modelsec scan`` invocation."""

    group: SecurityGroup
    models: list[ModelResult]
