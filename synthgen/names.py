"""Names and limits the command line needs when it is imported, kept free of heavy imports.

The CLI builds its choice enums and option bounds at import, and the modules these belong to pull in
pydantic, msgspec or tqdm: `synthgen --help` must not pay for them. export.py, importers.py and
config.py take their values from here; SUBTYPES repeats synthgen.kinds.SUBTYPES (which needs the
pydantic answer models), and tests/test_startup.py keeps the two equal.
"""

SUBTYPES = ("short-long", "long-short", "short-short", "long-long")  # the kinds with brainstormed tasks
EXPORT_FORMATS = ("e5", "sentence-transformers", "flagembedding", "medi")
IMPORT_FORMATS = ("pairs", "beir", "medi", "flagembedding")

# The largest run: twenty times the paper's 500k examples, over 10 GB of examples, and a resume
# holds every finished index and example digest in memory. A larger N is most likely a typo and is
# refused; a larger dataset is several runs with other seeds.
MAX_EXAMPLES = 10_000_000
# Requests per example at most: generate.request_cap_factor, and an explicit --max-requests.
MAX_CAP_FACTOR = 10
MAX_REQUESTS = MAX_EXAMPLES * MAX_CAP_FACTOR
