"""Export onto a really full disk: a size-limited tmpfs mounted in a private mount namespace
(``unshare --user --map-root-user --mount``: no privileges needed where user namespaces are on)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    import tensorflow as tf
    from tests.models.test_models import SPEC, make_din
    from tfrec.export import ExportError, export_saved_model, list_versions
    from tfrec.testing import random_features

    base = Path(sys.argv[1])
    model = make_din()
    model(random_features(SPEC, 2, 4, seed=0))
    first = export_saved_model(model, SPEC, base, "din")

    def digest(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    before = digest(first)
    with open(base / "filler", "wb") as f:  # leave ~64 KiB: less than any SavedModel
        while os.statvfs(base).f_bavail * os.statvfs(base).f_frsize > 64 << 10:
            f.write(b"\\0" * (256 << 10 if os.statvfs(base).f_bavail * os.statvfs(base).f_frsize > 1 << 20
                             else 4096))
            f.flush()
    try:
        export_saved_model(model, SPEC, base, "din")
        error = None
    except ExportError as err:
        error = str(err)
    loaded = tf.saved_model.load(str(first))
    print(json.dumps({"error": error, "versions": list_versions(base / "din"),
                      "entries": sorted(p.name for p in (base / "din").iterdir()),
                      "intact": digest(first) == before, "signatures": sorted(loaded.signatures)}))
""")


def _namespaces_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespaces_available(),
                    reason="needs unshare with user namespaces (a private tmpfs); the ENOSPC path is also "
                           "tested without one: test_saved_model.py::test_full_disk_is_an_export_error_naming_"
                           "the_untouched_versions")
def test_full_disk_leaves_old_versions_and_says_why(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    script = tmp_path / "export_on_full_disk.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = f'mount -t tmpfs -o size=32m tmpfs "{mount}" && exec "{sys.executable}" "{script}" "{mount}"'
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] is not None, "the second export should not fit"
    assert "no space left" in result["error"] and "versions [1] are untouched" in result["error"]
    assert "MiB free" in result["error"] and "run the export again" in result["error"]
    assert result["versions"] == [1] and result["entries"] == ["1"]  # no version 2, no temp dir
    assert result["intact"]
    assert result["signatures"] == ["score", "serving_default", "user_tower"]
