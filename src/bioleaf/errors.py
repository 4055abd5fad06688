"""User-facing errors.

Every mistake a user can make (a bad flag, a broken file) raises one of these.
The CLI turns them into a one-line message and the exit code below, never a traceback.
"""


class BioleafError(Exception):
    """Base class: a clear, one-line message for the user."""

    exit_code = 1


class UsageError(BioleafError):
    """A flag, preset or parameter value is wrong (exit code 2)."""

    exit_code = 2


class DataError(BioleafError):
    """A data or checkpoint file is missing, malformed or foreign (exit code 1)."""

    exit_code = 1


class DivergenceError(BioleafError):
    """Training produced NaN/Inf (exit code 1); the last good checkpoint is kept."""

    exit_code = 1


class LocalityError(BioleafError):
    """``bioleaf check-locality`` measured a dependency outside the locality contract that no declared
    idealisation explains (exit code 1)."""

    exit_code = 1


_OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "bad_alloc")


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` says that memory ran out: Python's ``MemoryError``, torch's CPU allocator ("can't
    allocate memory"), a C++ ``std::bad_alloc`` or CUDA's ``torch.cuda.OutOfMemoryError`` ("out of memory")."""
    text = " ".join(str(e).split()).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and any(m in text for m in _OUT_OF_MEMORY))
