"""verify_candidate: model-judge verifiers run only when the caller can ask the engine."""

from pydantic import BaseModel

from ponder.verify import CheckResult, VerifierSpec, verify_candidate


class Answer(BaseModel):
    text: str


def deterministic(output: Answer, document: str) -> CheckResult:
    return CheckResult(output.text in document, 1.0 if output.text in document else 0.0)


def judged(output: Answer, document: str, ask_yes_no) -> CheckResult:
    p = ask_yes_no(f"is '{output.text}' right?")
    return CheckResult(p >= 0.5, p, [f"P(yes) = {p:.2f}"])


SPECS = (
    VerifierSpec("grounded", deterministic, "in the document"),
    VerifierSpec("judge", judged, "the model agrees", required=False, judge=True),
)


def run(ask=None):
    _, verdicts = verify_candidate(
        text='{"text": "cat"}', output_model=Answer, document="a cat", verifiers=SPECS,
        ask_yes_no=ask,
    )  # fmt: skip
    return {v.verifier: v for v in verdicts}


def test_without_an_asker_judge_verifiers_are_left_out():
    assert set(run()) == {"schema", "grounded"}


def test_with_an_asker_the_judge_asks_and_is_scored_by_p_yes():
    asked: list[str] = []

    def ask(prompt: str) -> float:
        asked.append(prompt)
        return 0.8

    verdict = run(ask)["judge"]
    assert asked == ["is 'cat' right?"]
    assert verdict.passed and verdict.score == 0.8 and verdict.findings == ["P(yes) = 0.80"]


def test_a_judge_that_cannot_ask_fails_its_verdict_instead_of_the_job():
    def broken(prompt: str) -> float:
        raise RuntimeError("engine down")

    verdict = run(broken)["judge"]
    assert not verdict.passed and verdict.findings == ["verifier error: RuntimeError"]
