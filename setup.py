"""What pyproject.toml cannot say: the root ``templates/`` folder ships as ``sequencer.shipped``.

setuptools' discovery (``[tool.setuptools.packages.find]``) names a package after its
folder, so the package list lives here, where ``package_dir`` maps ``sequencer.shipped``
to ``templates/``. Its sub-folders are listed too, so setuptools treats them as the data
folders they are (not as packages it would warn about and one day drop). The files they
carry are in pyproject.toml's ``[tool.setuptools.package-data]``, like everything else.
"""

from setuptools import find_namespace_packages, setup

PACKAGES = find_namespace_packages(include=["sequencer*", "channels*", "suppression*"])
SHIPPED = [f"sequencer.shipped.{name}" for name in find_namespace_packages(where="templates")]

setup(
    packages=[*PACKAGES, "sequencer.shipped", *SHIPPED],
    package_dir={"sequencer.shipped": "templates"},
)
