"""Batches that land in object storage: copy new files from an fsspec URL into incoming/.

`orchestration.incoming_url` (s3://bucket/prefix, gs://..., file:///path) is listed on each watch
run; a file is copied once per (name, size, version tag), the source is never modified, and the
copy is written atomically so the watch flow never reads half a file. What was copied is kept in
.ratchet-cache/fetched.json; the ledger still spots the same content arriving under a new name.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from ratchet import atomic
from ratchet.batches import batch_kind
from ratchet.paths import ProjectPaths

log = logging.getLogger("ratchet")


class RemoteIncomingError(RuntimeError):
    """The incoming URL cannot be listed or read (the message names the URL)."""


def _version_tag(info: dict) -> str:
    """Whatever the store offers to tell a rewritten object from the old one."""
    for key in ("ETag", "etag", "md5Hash", "generation", "VersionId", "mtime", "LastModified", "last_modified",
                "created"):
        if info.get(key) is not None:
            return f"{key}={info[key]}"
    return ""


def fetch_incoming(paths: ProjectPaths, url: str) -> list[str]:
    """Copy every supported file under `url` not fetched before into incoming/; returns their names."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        listing = fs.ls(root, detail=True)
    except FileNotFoundError:
        raise RemoteIncomingError(f"orchestration.incoming_url {url!r}: nothing there (no such prefix)") from None
    except (ImportError, ValueError) as error:  # unknown protocol, or its package (s3fs, gcsfs) missing
        raise RemoteIncomingError(f"orchestration.incoming_url {url!r}: {error}") from None
    fetched: dict[str, str] = atomic.read_json(paths.fetched_manifest) if paths.fetched_manifest.exists() else {}
    copied = []
    paths.incoming.mkdir(parents=True, exist_ok=True)
    files = sorted((i for i in listing if i.get("type") == "file"), key=lambda i: str(i["name"]))
    for info in files:
        name = PurePosixPath(str(info["name"])).name
        if batch_kind(Path(name).name) is None:
            continue
        key = f"{fs.unstrip_protocol(info['name'])}"
        stamp = f"size={info.get('size')};{_version_tag(info)}"
        if fetched.get(key) == stamp:
            continue
        target = paths.incoming / name
        if target.exists():  # a different file of that name still waits: keep both
            target = paths.incoming / f"{target.stem}-{len(fetched)}{target.suffix}"
        atomic.write_bytes(target, fs.cat_file(info["name"]))
        fetched[key] = stamp
        atomic.write_json(paths.fetched_manifest, fetched)  # after each file: a crash loses nothing
        copied.append(target.name)
        log.info("incoming: fetched %s -> %s", key, target)
    return copied
