"""Noisy-label methods, one file each.  Importing the package registers all of them."""
from noisybench.methods.registry import (  # noqa: F401
    build_hparams,
    build_method,
    describe_methods,
    get_method,
    method_names,
    register,
)
from noisybench.methods import standard  # noqa: F401
from noisybench.methods import coteaching  # noqa: F401
from noisybench.methods import gce  # noqa: F401
from noisybench.methods import jocor  # noqa: F401
from noisybench.methods import sigua  # noqa: F401
from noisybench.methods import lend  # noqa: F401
from noisybench.methods import me_momentum  # noqa: F401
from noisybench.methods import self_learning  # noqa: F401
from noisybench.methods import elr  # noqa: F401
from noisybench.methods import elr_plus  # noqa: F401
from noisybench.methods import dividemix  # noqa: F401
