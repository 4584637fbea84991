"""The four-eyes rule for suppression rules: nobody applies a rule they caused.

A feedback rule is proposed from false positives; whoever marked one of them cannot also be
the one who applies it (in the console or on the command line). Another person must.
"""

from __future__ import annotations

from refrig_assets.access.identity import Forbidden
from refrig_assets.operations.feedback import FeedbackLoop


def rule_authors(feedback: FeedbackLoop, rule_id: str) -> set[str]:
    """Who marked the false positives a rule was proposed from."""
    rule = feedback.get(rule_id)
    evidence = [e for e in str(rule["evidence"]).split(",") if e]
    labels = feedback.labels()
    return set(labels.loc[labels["alert_id"].isin(evidence), "labelled_by"])


def check_four_eyes(feedback: FeedbackLoop, rule_id: str, actor: str) -> None:
    """:class:`Forbidden` when ``actor`` marked one of the rule's false positives."""
    if actor in rule_authors(feedback, rule_id):
        raise Forbidden(
            f"four-eyes rule: {actor} marked false positives this rule was proposed from; "
            "a different admin must apply it"
        )
