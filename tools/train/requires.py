"""The third-party modules a training tool needs: one line on how to install a missing one instead of a traceback."""

import importlib
import os
import sys

# module -> (Debian packages, pip package)
INSTALL = {
    "torch": ("python3-torch libopenblas0-pthread", "torch"),
    "numpy": ("python3-numpy", "numpy"),
    "PIL": ("python3-pil", "pillow"),
}


def require(*modules):
    """Imports each module, or exits with status 1 and one line naming the missing ones and how to install them."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:  # also a module whose shared libraries are missing
            missing.append((name, err))
    if not missing:
        return
    names = ", ".join(name for name, _ in missing)
    debian = " ".join(INSTALL[name][0] for name, _ in missing)
    pip = " ".join(INSTALL[name][1] for name, _ in missing)
    sys.exit(
        f"{os.path.basename(sys.argv[0])}: needs {names}, which {sys.executable} cannot import ({missing[0][1]}); "
        f"install on Debian with `apt-get install {debian}` (then run /usr/bin/python3), or `pip install {pip}`"
    )
