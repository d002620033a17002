"""What the recipes and the benchmarks share outside the library: PNG figures written atomically (matplotlib is not a
dependency of the library). The machine record and the thread guard are `spac_hf.utils.environment_info` and
`spac_hf.utils.torch_threads`: the library's data builders record them too.

Imported as `spac_hf.scripts.script_utils` by the scripts and the benchmarks; matplotlib is imported when a figure
is saved.
"""

from __future__ import annotations

import os
from pathlib import Path

from spac_hf.utils import atomic_write_bytes


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """Render a matplotlib figure to PNG and write it atomically; the figure is closed either way."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", **savefig_kwargs)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
