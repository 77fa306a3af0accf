"""Networks, by name: the model registry, the shared backbones and the papers' own networks.

A method owns its networks and builds them through ``MethodContext.build_network``; the
trainer builds them from here.  Importing the package registers every network.
"""
from noisybench.methods.networks import (
    backbones,  # noqa: F401  (registers the shared backbones)
    papers,  # noqa: F401  (registers the papers' networks)
)
from noisybench.methods.networks.registry import (  # noqa: F401
    build_model,
    check_model_fits,
    check_model_name,
    describe_models,
    min_image_side,
    model_names,
    register_model,
)
