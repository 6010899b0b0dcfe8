"""Names that start-up needs, here so that `synthgen --help` and `synthgen stats` import nothing heavy.

The CLI builds its choice enums when it is imported, and the modules these names belong to pull in
pydantic, msgspec or tqdm; stats reads a run's files, whose names belong to generate.py, which
imports the whole pipeline (openai included). export.py and importers.py take their tuples from
here; SUBTYPES repeats synthgen.kinds.SUBTYPES (which needs the pydantic answer models) and the file
names repeat synthgen.generate's: tests/test_startup.py keeps them equal.
"""

SUBTYPES = ("short-long", "long-short", "short-short", "long-long")  # the kinds with brainstormed tasks
EXPORT_FORMATS = ("e5", "sentence-transformers", "flagembedding", "medi")
IMPORT_FORMATS = ("pairs", "beir", "medi", "flagembedding")
# The files of a run folder (synthgen.generate).
EXAMPLES = "examples.jsonl"
REJECTS = "rejects.jsonl"
MANIFEST = "manifest.json"
