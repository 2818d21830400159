"""pyarrow for the sidecar's bundle: replaces pyinstaller-hooks-contrib's hook-pyarrow.

The contrib hook collects every submodule and every shared library of pyarrow (~175 MB). LanceDB
(the only user) loads pyarrow's core — ``lib`` links libarrow, libarrow_python, compute,
dataset, acero, parquet and substrait, so those come in through binary dependency analysis —
plus the Python modules ``compute``, ``dataset``, ``fs``, ``ipc``, ``substrait``, ``types``.
It never loads Arrow Flight (31 MB), the S3 filesystem (17 MB), GCS/Azure/HDFS filesystems,
ORC, CUDA, Gandiva, pandas interop or the test suite: ``pyarrow.fs`` and ``pyarrow.dataset``
import those optional parts inside ``try/except ImportError`` and LanceDB only builds an
``S3FileSystem`` for ``s3://`` URIs (``lancedb/util.py: fs_from_uri``); the sidecar's store is a
local directory. Evidence: a LanceDB workload (create, vector search, full-text index/search,
add, delete, async API) loads exactly the modules kept here; ``bundle-selftest`` re-runs it in
the frozen app.
"""

import sys
from pathlib import Path

from PyInstaller.utils.hooks import collect_submodules

# The skip list is declared once, in bundling/collect.py (the post-build check reads it too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect import PYARROW_SKIP as _SKIP

hiddenimports = collect_submodules("pyarrow", filter=lambda name: not name.startswith(_SKIP))
excludedimports = list(_SKIP)
