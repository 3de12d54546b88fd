"""The dbsandbox command-line tool, installed from PyPI: this wheel carries the binary.

pip puts the ``dbsandbox`` executable in the environment's scripts directory (a virtualenv's
``bin``), so ``dbsandbox run -- pytest`` works once the environment is active, and
pytest-dbsandbox finds it there even when it is not. :func:`find_dbsandbox_bin` returns its
path; ``python -m dbsandbox ARGS`` runs it. The PostgreSQL server binaries are not included:
dbsandbox uses the ones your operating system's packages installed.
"""

import os
import sys
import sysconfig

__all__ = ["find_dbsandbox_bin"]

_NAME = "dbsandbox.exe" if os.name == "nt" else "dbsandbox"


def find_dbsandbox_bin() -> str:
    """The path of the ``dbsandbox`` binary this package installed."""
    directories = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    try:
        directories.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for directory in directories:
        candidate = os.path.join(directory or "", _NAME)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        f"the dbsandbox binary is not in {', '.join(d for d in directories if d)}: "
        "reinstall it with `pip install --force-reinstall dbsandbox`"
    )
