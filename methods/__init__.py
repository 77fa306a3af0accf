"""Noisy-label methods, one file each.  Importing the package registers all of them."""
from methods.registry import (  # noqa: F401
    build_hparams,
    build_method,
    describe_methods,
    get_method,
    method_names,
    register,
)
from methods import standard  # noqa: F401
from methods import coteaching  # noqa: F401
from methods import gce  # noqa: F401
from methods import jocor  # noqa: F401
from methods import sigua  # noqa: F401
from methods import lend  # noqa: F401
from methods import me_momentum  # noqa: F401
from methods import self_learning  # noqa: F401
