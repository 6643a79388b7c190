"""Package discovery for the three source roots (metadata is in pyproject.toml).

The repository keeps pure kernels (kernels/) and the PushT generator (pusht/) beside mjxgen/, but an installed
wheel claims only the `mjxgen` name: they install as mjxgen.kernels and mjxgen.pusht. setuptools' declarative
`packages.find` maps one folder to one name, so the three roots are searched here. Every folder below them is
a package (namespace discovery: a folder of modules without __init__.py is not skipped, and data folders such as
mjxgen/assets come along); tests/test_packaging.py checks the installed tree against the source tree.
"""

from setuptools import find_namespace_packages, setup

ROOTS = {"mjxgen": "mjxgen", "mjxgen.kernels": "kernels", "mjxgen.pusht": "pusht"}

packages = set(ROOTS)
for name, folder in ROOTS.items():
    packages |= {f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])}

setup(packages=sorted(packages), package_dir=ROOTS)
