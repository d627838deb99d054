"""Write output files atomically, so no reader ever sees half a file.

Every file goes to a temporary name in the same folder and is renamed into
place once complete. An interrupted run therefore leaves either the old file or
none, never a truncated one that DVC would cache.

Inside ``together()``, the renames wait until the block ends, and then happen
all at once with Ctrl-C and SIGTERM held back: a command that writes several
files leaves either all of its new files or none of them, never a folder that
mixes two runs.
"""

import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

_pending = None  # [(temporary, final path)] inside together(), else None
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def together():
    """Put every file written in this block in place only if the block succeeds."""
    global _pending
    if _pending is not None:
        yield
        return
    _pending = []
    try:
        yield
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            for tmp, path in _pending:
                os.replace(tmp, path)
            _pending.clear()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    finally:
        for tmp, _ in _pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _pending = None


@contextlib.contextmanager
def atomic_file(path, mode="w"):
    """Open a temporary file beside ``path``; rename it to ``path`` on success."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        from prefix_sharing.errors import UserError

        raise UserError(f"{path}: not a regular file; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # Held back until ``tmp`` names the new file, so that an interrupt
        # cannot leave it behind unnamed.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                       suffix=".tmp")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else "\n"
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        if _pending is None:
            os.replace(tmp, path)
        else:
            _pending.append((tmp, path))
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def write_json(path, data):
    """Write ``data`` as indented JSON with a final newline, atomically."""
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def read_json(path):
    """Parse a JSON file; a missing or broken file is an ``InputError``."""
    from prefix_sharing.errors import InputError

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise InputError(path, error.strerror or str(error)) from None
    except (ValueError, RecursionError) as error:
        raise InputError(path, f"not valid JSON ({error})") from None
