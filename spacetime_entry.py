"""The ``spacetime`` command's entry point, outside the package.

Importing :mod:`spacetime` (NumPy, SciPy, Numba, h5py and the cached kernels) takes
about a second, and a console script imports the module of its entry point before
it calls it. An entry point inside the package could therefore not catch a Ctrl-C
that arrives during that import, and Python would print a traceback. This module
imports nothing heavy itself: it imports the command line inside ``main``, where an
interrupt is caught, and only then hands over to :func:`spacetime.cli.main`.
"""

import sys

EXIT_INTERRUPTED = 130


def main() -> int:
    try:
        from spacetime.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("spacetime: interrupted while starting; nothing was done\n")
        return EXIT_INTERRUPTED
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
