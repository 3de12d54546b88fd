"""``python -m dbsandbox ARGS``: runs the binary this package installed, with ARGS."""

import os
import subprocess
import sys

from dbsandbox import find_dbsandbox_bin


def main() -> int:
    binary = find_dbsandbox_bin()
    if os.name == "posix":
        os.execv(binary, [binary, *sys.argv[1:]])
    return subprocess.call([binary, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
