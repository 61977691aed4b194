"""Quality per version and tier against hand-computed answers; bad input records nothing."""

from __future__ import annotations

import numpy as np
import pytest

import otel_migration
from otel_migration import record_action, record_confidence, record_feedback, record_quality, record_upgrade
from otel_migration._llm.quality import QualityTracker

from .conftest import Harness


def stats_of(harness: Harness, version: str, tier: str = "sonnet") -> otel_migration.QualityStats:
    (found,) = [
        s for s in harness.telemetry.get(QualityTracker).stats() if s.version == version and s.tier == tier
    ]
    return found


def test_scores_actions_nps_csat_against_hand_computed_answers(harness: Harness) -> None:
    for score in (95, 90, 89, 70, 69, 50, 49, 0):  # two of each band
        record_quality(score, version="2.0", tier="sonnet")
    for action, edits, seconds in [
        ("approved", 0, 10.0),
        ("approved", 0, 30.0),
        ("approved", 2, 50.0),
        ("edited", 1, 70.0),
        ("regenerated", 0, None),
        ("abandoned", 0, None),
        ("approved", 0, 20.0),
        ("regenerated", 0, None),
    ]:
        record_action(action, edits=edits, seconds=seconds, version="2.0", tier="sonnet")  # type: ignore[arg-type]
    for rating in (10, 9, 9, 8, 7, 6, 3, 0, 10, 10):  # 5 promoters, 2 passives, 3 detractors
        record_feedback(rating, version="2.0", tier="sonnet")
    for rating in (5, 4, 4, 3, 1):
        record_feedback(rating, scale="csat", version="2.0", tier="sonnet")
    for confidence in (0.9, 0.8, 0.6, 0.5):
        record_confidence(confidence, version="2.0", tier="sonnet")
    record_upgrade("sonnet", "opus", version="2.0")

    s = stats_of(harness, "2.0")
    assert s.scores == 8 and s.mean_score == pytest.approx(512 / 8)
    assert s.score_bands == {"excellent": 2, "good": 2, "fair": 2, "poor": 2}
    # 8 actions: approved without edits 3; "approved" with edits counts as edited (2 edited)
    assert s.actions == 8
    assert s.acceptance_rate == pytest.approx(3 / 8)
    assert s.edit_rate == pytest.approx(2 / 8)
    assert s.regeneration_rate == pytest.approx(2 / 8)
    assert s.abandonment_rate == pytest.approx(1 / 8)
    assert s.median_time_to_approval_s == pytest.approx(30.0)  # median of 10, 30, 50, 70, 20
    assert s.nps == pytest.approx(100 * (5 - 3) / 10)  # 20
    assert s.nps_answers == 10
    assert s.csat == pytest.approx(17 / 5) and s.csat_satisfied == pytest.approx(3 / 5)
    assert s.mean_confidence == pytest.approx(0.7) and s.low_confidence == 2
    assert s.upgrade_rate == pytest.approx(1 / 8)

    feedback = {
        p.attributes["migration.nps_class"]: p.value for p in harness.points("migration.quality.feedback")
    }
    assert feedback == {"promoter": 5, "passive": 2, "detractor": 3}
    (nps,) = harness.points("migration.quality.nps")
    assert nps.value == pytest.approx(20.0)
    (score,) = harness.points("migration.quality.score")
    assert (score.count, score.sum) == (8, 512)


def test_version_and_migration_come_from_the_versioned_call(harness: Harness) -> None:
    with otel_migration.versioned("1.0", operation="answer", migration="assistant"):
        record_quality(80, tier="haiku")
    (s,) = harness.telemetry.get(QualityTracker).stats()
    assert (s.migration, s.version, s.tier) == ("assistant", "1.0", "haiku")
    (span,) = harness.spans("answer")
    (event,) = span.events
    assert event.name == "gen_ai.evaluation.result"
    assert event.attributes["gen_ai.evaluation.name"] == "quality_score"
    assert event.attributes["gen_ai.evaluation.score.value"] == 80.0
    assert event.attributes["gen_ai.evaluation.score.label"] == "good"


def test_sentiment_of_feedback_text(harness: Harness) -> None:
    record_feedback(9, text="Great answer, exactly what I needed. Thanks!", version="2.0")
    record_feedback(2, text="Wrong, useless and slow. Terrible.", version="2.0")
    record_feedback(7, text="The report has four sections.", version="2.0")
    (s,) = harness.telemetry.get(QualityTracker).stats()
    assert s.sentiment == {"positive": 1, "negative": 1, "neutral": 1}


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: record_feedback(11), "rating"),
        (lambda: record_feedback(0, scale="csat"), "rating"),
        (lambda: record_feedback(5, scale="stars"), "scale"),  # type: ignore[arg-type]
        (lambda: record_quality(-5), "score"),
        (lambda: record_quality(float("nan")), "score"),
        (lambda: record_action("liked"), "action"),  # type: ignore[arg-type]
        (lambda: record_action("approved", edits=-1), "edits"),
        (lambda: record_confidence(1.5), "confidence"),
        (lambda: record_upgrade("", "opus"), "from_tier"),
    ],
)
def test_bad_input_is_a_clear_error_and_records_nothing(
    harness: Harness, call: object, argument: str
) -> None:
    with (
        otel_migration.versioned("2.0", operation="answer"),
        pytest.raises(ValueError, match=argument) as caught,
    ):
        call()  # type: ignore[operator]
    assert argument in str(caught.value)
    assert harness.telemetry.get(QualityTracker).stats() == []
    (span,) = harness.spans("answer")
    assert span.events == ()


def test_quality_and_cost_feed_the_verdicts(harness: Harness) -> None:
    rng = np.random.default_rng(5)
    for score in rng.normal(85, 5, 200).clip(0, 100):
        record_quality(float(score), version="1.0")
    for score in rng.normal(75, 5, 200).clip(0, 100):
        record_quality(float(score), version="2.0")
    for _ in range(60):
        with otel_migration.versioned("1.0", operation="answer"):
            otel_migration.record_llm_call(
                model="claude-3-5-haiku", input_tokens=int(rng.integers(900, 1100)), output_tokens=200
            )
        with otel_migration.versioned("2.0", operation="answer"):
            otel_migration.record_llm_call(
                model="claude-sonnet-4", input_tokens=int(rng.integers(900, 1100)), output_tokens=200
            )
    verdicts = {v.metric: v for v in otel_migration.snapshot().verdicts() if v.metric in ("quality", "cost")}
    assert verdicts["quality"].state == "worse" and "quality score shifts -" in verdicts["quality"].reason
    assert verdicts["cost"].state == "worse" and "costlier" in verdicts["cost"].reason
