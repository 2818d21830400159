"""Place corpus2's files from local git mirrors of their source repositories, checked by blob id.

The held-out corpus (``corpus2/manifest.json``: file, repo, path, commit, blob) is not committed:
fetched data may only be kept, git-ignored, in ``tests/ingest/corpus2/{dev,test}/``. This script
re-creates those files offline from git mirrors already on disk (one bare or non-bare clone per
source repository) with ``git show <commit>:<path>`` and refuses any copy whose git blob id
(SHA-1 of ``b"blob <size>\\0" + bytes``) differs from the manifest. It uses no network; CI does
not run it (the corpus2 tests skip when the files are absent).

Usage::

    python -m tests.ingest.materialise_corpus2 --mirrors /work/.mirror   # write missing/changed files
    python -m tests.ingest.materialise_corpus2 --check                   # verify what is on disk

A mirror of ``owner/name`` is looked for at ``<mirrors>/owner+name/repo`` (or ``…/repo/.git``).
Exit status 0 when every file is in place and verified, 1 otherwise (each problem is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS2 = HERE / "corpus2"
MANIFEST = CORPUS2 / "manifest.json"


def blob_id(data: bytes) -> str:
    """The git blob id (hex SHA-1) of ``data``, as ``git hash-object`` computes it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def mirror_of(mirrors: Path, repo: str) -> Path | None:
    """The git directory of ``repo``'s mirror under ``mirrors``, or None when absent."""
    base = mirrors / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "HEAD").is_file():
            return candidate
    return None


def git_show(git_dir: Path, commit: str, path: str) -> bytes:
    """The bytes of ``path`` at ``commit``; raises ``subprocess.CalledProcessError`` if absent."""
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"],
        check=True, capture_output=True,
    ).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mirrors", type=Path, help="folder of git mirrors (owner+name/repo)")
    parser.add_argument("--check", action="store_true", help="only verify the files on disk")
    parser.add_argument("--dest", type=Path, default=CORPUS2, help="corpus2 folder (default: here)")
    args = parser.parse_args(argv)
    if not args.check and args.mirrors is None:
        parser.error("--mirrors is needed unless --check")
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    problems = written = 0
    for entry in entries:
        target = args.dest / entry["file"]
        if target.is_file() and blob_id(target.read_bytes()) == entry["blob"]:
            continue
        if args.check:
            print(f"{entry['file']}: {'blob differs' if target.exists() else 'missing'}")
            problems += 1
            continue
        git_dir = mirror_of(args.mirrors, entry["repo"])
        if git_dir is None:
            print(f"{entry['file']}: no mirror of {entry['repo']} under {args.mirrors}")
            problems += 1
            continue
        try:
            data = git_show(git_dir, entry["commit"], entry["path"])
        except subprocess.CalledProcessError as exc:
            print(f"{entry['file']}: git show failed: {exc.stderr.decode(errors='replace').strip()}")
            problems += 1
            continue
        if blob_id(data) != entry["blob"]:
            print(f"{entry['file']}: blob {blob_id(data)} != manifest {entry['blob']}")
            problems += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written += 1
    print(f"{len(entries) - problems}/{len(entries)} files verified ({written} written)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
