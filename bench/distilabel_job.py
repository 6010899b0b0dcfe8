"""The peer: distilabel 1.5.3's GenerateTextRetrievalData with OpenAILLM, N rows, C in flight.

Run by bench/run.py inside its own virtual environment (distilabel is no synthgen dependency):
    python bench/distilabel_job.py URL N C
prints "valid V of N" when done.
"""

import sys
import tempfile

from distilabel.models.llms import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import GenerateTextRetrievalData


def main() -> None:
    url, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = [{"task": f"Retrieve documents of sort {i} for a user's query."} for i in range(n)]
    with tempfile.TemporaryDirectory() as cache, Pipeline("bench", cache_dir=cache) as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=concurrency)
        # A batch's rows are sent concurrently: input_batch_size is the number in flight.
        generate = GenerateTextRetrievalData(
            llm=OpenAILLM(model="m", base_url=url, api_key="sk-bench", max_retries=0),
            language="English",
            input_batch_size=concurrency,
        )
        load >> generate
        distiset = pipeline.run(use_cache=False)
        data = distiset["default"]["train"]
        valid = sum(1 for row in data if row.get("user_query"))
    print(f"valid {valid} of {n}", flush=True)


if __name__ == "__main__":
    main()
