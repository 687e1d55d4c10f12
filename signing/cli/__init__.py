"""The ``lienthong sign`` and ``lienthong verify`` commands: argparse, progress bars and tables
(rich) live here and nowhere else in :mod:`signing`."""
