"""Re-verify the candidates a database already holds, with the task's verifiers and with the
same set minus some of them, and count how many more candidates the smaller set would have
passed, split by whether the new checks say the answer is empty or incomplete.

Shows what checks added to a task change on real model output, without paying for
generation again. Reads candidates and documents; prints counts and verifier names only.

    python bench/replay_verifiers.py --database-url postgresql+psycopg://.../ponder_eval \
        --task medrec_extraction --without completeness,frequency_in_evidence,route_vocabulary
"""

from __future__ import annotations

import argparse
from collections import Counter

import sqlalchemy as sa

from ponder.verify import passes_required, verify_candidate
from tasks.registry import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--without", required=True, help="Comma-separated verifier names.")
    args = parser.parse_args()
    task = get_task(args.task)
    removed = set(args.without.split(","))
    unknown = removed - {v.name for v in task.verifiers}
    if unknown:
        parser.error(f"no verifier named {sorted(unknown)} in {task.name}")
    everything = tuple(v for v in task.verifiers if not v.judge)
    before = tuple(v for v in everything if v.name not in removed)
    engine = sa.create_engine(args.database_url, hide_parameters=True)
    query = sa.text(
        "select c.text, j.document from candidates c join jobs j on j.id = c.job_id "
        "where j.task = :task"
    )
    tally: Counter[str] = Counter()
    newly_failing: Counter[str] = Counter()
    with engine.connect() as conn:
        for text, document in conn.execute(query, {"task": task.name}):
            tally["candidates"] += 1
            _, old = verify_candidate(text=text, output_model=task.output_model,
                                      document=document, verifiers=before)  # fmt: skip
            _, new = verify_candidate(text=text, output_model=task.output_model,
                                      document=document, verifiers=everything)  # fmt: skip
            tally["passed without them"] += passes_required(old)
            tally["passed with them"] += passes_required(new)
            if passes_required(old) and not passes_required(new):
                for verdict in new:
                    if verdict.required and not verdict.passed:
                        newly_failing[verdict.verifier] += 1
    print(f"task {task.name}: {tally['candidates']} stored candidates re-verified")
    print(f"  passed every required check without {sorted(removed)}: "
          f"{tally['passed without them']}")  # fmt: skip
    print(f"  passed every required check with them:    {tally['passed with them']}")
    for name, count in newly_failing.most_common():
        print(f"  now failed by {name}: {count}")


if __name__ == "__main__":
    main()
