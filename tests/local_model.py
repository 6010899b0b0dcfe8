"""Whether the embedded model can run here: llama-cpp-python and the model's chunk packages."""

import pytest

from synthgen.llm import model_file as mf


def llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def real_model_installed() -> bool:
    if not llama_cpp_installed():
        return False
    try:
        mf.locate_chunks()
    except mf.ModelFileError:
        return False
    return True


needs_llama_cpp = pytest.mark.skipif(not llama_cpp_installed(), reason="needs llama-cpp-python (the local extra)")
needs_real_model = pytest.mark.skipif(
    not real_model_installed(), reason="needs the local extra: llama-cpp-python and the model's chunk packages"
)
