import atexit
import os
import shutil
import tempfile

# Keep the test processes light on this small machine and deterministic in layout.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The command line's compiled-program cache: one per test session, not the user's.
if "NMRNN_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="nmrnn-test-xla-")
    os.environ["NMRNN_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
