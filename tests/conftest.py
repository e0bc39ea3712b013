import atexit
import os
import shutil
import tempfile

import pytest

# Keep the test processes light on this small machine and deterministic in layout.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The command line's compiled-program cache: one per test session, not the user's.
if "NMRNN_COMPILATION_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="nmrnn-test-xla-")
    os.environ["NMRNN_COMPILATION_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)

# The session computes in a one-CPU runtime, as the workers of grids and sweeps do
# (nmrnn.runtime.start_one_cpu_runtime): grids then train in this process, and their numbers are
# the ones worker processes give.
from nmrnn.runtime import start_one_cpu_runtime  # noqa: E402

start_one_cpu_runtime()


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """The whole suite compiles more programs than one process may keep mapped (see
    :func:`nmrnn.runtime.release_compiled_programs`); release them once past half the limit."""
    yield
    from nmrnn.runtime import release_compiled_programs

    release_compiled_programs()
