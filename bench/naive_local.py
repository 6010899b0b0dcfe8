"""The baseline for bench/local.py: the naive way to run the embedded model, one request at a time.

    python bench/naive_local.py --tasks TASK_DIR --n 12 [--seed 0] [--kinds ...]

llama_cpp.Llama.create_chat_completion with the kind's schema as json_object (the only structured
output it enforces in-process), [llm.max_tokens] as answer caps, all cores, on the same plan (seed,
tasks, prompts) and the same validation as synthgen generate. It sends requests until N are valid
(or 1.5 N + 10 were sent) and prints one JSON line: valid, rejected, wall seconds (model load
included), the rejection reasons.
"""

import argparse
import collections
import json
import time
from pathlib import Path

from synthgen.answers import validate_answer
from synthgen.config import load_config, parse_weights
from synthgen.dispatch import request_cap
from synthgen.generate import load_all_tasks
from synthgen.kinds import KINDS
from synthgen.llm.base import Completion
from synthgen.llm.model_file import resolve_model
from synthgen.llm.threads import cpu_count
from synthgen.prompts import Templates
from synthgen.sampling import Planner
from synthgen.schemas import answer_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, required=True)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds")
    args = parser.parse_args()
    began = time.monotonic()
    import llama_cpp

    overrides = {"generate": {"seed": args.seed, "tasks": str(args.tasks)}}
    if args.kinds:
        overrides["kinds"] = parse_weights(args.kinds, "kinds")
    config = load_config(overrides=overrides)
    planner = Planner(config, load_all_tasks(config))
    templates = Templates()
    llm = llama_cpp.Llama(model_path=str(resolve_model(None).path), n_ctx=4096, n_threads=cpu_count(),
                          seed=args.seed, verbose=False)
    valid, reasons = 0, collections.Counter()
    for index in range(request_cap(args.n, config.generate.request_cap_factor)):
        if valid >= args.n:
            break
        item = planner.item(index)
        prompt = templates.generate[item.kind].render(item.placeholders)
        schema = answer_schema(KINDS[item.kind].answer)
        reply = llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}],
            response_format={"type": "json_object", "schema": schema},
            max_tokens=config.llm.max_tokens[item.kind],
            temperature=config.llm.temperature,
            top_p=config.llm.top_p,
        )
        choice = reply["choices"][0]
        completion = Completion(choice["message"]["content"] or "", choice["finish_reason"] or "stop",
                                reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"])
        verdict = validate_answer(completion, KINDS[item.kind].answer)
        if verdict.reason:
            reasons[verdict.reason] += 1
        else:
            valid += 1
    wall = time.monotonic() - began
    print(json.dumps({"valid": valid, "rejected": sum(reasons.values()), "wall": wall, "reasons": dict(reasons)}))


if __name__ == "__main__":
    main()
