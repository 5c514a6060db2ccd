import importlib.metadata
import os

import jaxcrn


def test_version_comes_from_the_package_metadata():
    assert jaxcrn.__version__ == importlib.metadata.version("jaxcrn")


def test_py_typed_is_shipped():
    assert os.path.isfile(os.path.join(os.path.dirname(jaxcrn.__file__), "py.typed"))
