"""Point the ROS wheels' rosidl Python CMake exports at this interpreter.

The message wheels were built under /opt/python/cp311-cp311, and their
``*__rosidl_generator_pyExport*.cmake`` files keep that prefix's Python and
numpy include directories. CMake refuses to configure an interface package
that depends on them while those directories do not exist, so rewrite them to
this interpreter's include directory and the venv's numpy include directory.
Run with the venv's python; running it again changes nothing.
"""

import pathlib
import sys
import sysconfig

import numpy

BUILD_PREFIX = "/opt/python/cp311-cp311"
PYTHON_INCLUDE = f"{BUILD_PREFIX}/include/python3.11"
NUMPY_INCLUDE = f"{BUILD_PREFIX}/lib/python3.11/site-packages/numpy/_core/include"


def main():
    replacements = {
        NUMPY_INCLUDE: numpy.get_include(),
        PYTHON_INCLUDE: sysconfig.get_paths()["include"],
    }
    exports = sorted(pathlib.Path(sys.prefix, "share").glob("*/cmake/*__rosidl_generator_pyExport*.cmake"))
    changed = 0
    for path in exports:
        text = path.read_text()
        fixed = text
        for old, new in replacements.items():
            fixed = fixed.replace(old, new)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    leftover = [str(p) for p in exports if BUILD_PREFIX in p.read_text()]
    if leftover:
        sys.exit(f"unexpected {BUILD_PREFIX} paths remain in: {', '.join(leftover)}")
    print(f"rosidl CMake exports: rewrote {changed} of {len(exports)} files")


if __name__ == "__main__":
    main()
