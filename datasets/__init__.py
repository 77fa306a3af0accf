"""Dataset loaders (no noise here).  Importing the package registers every loader."""
from noisybench.datasets.registry import (  # noqa: F401
    DATA_ROOT_ENV,
    Dataset,
    check_dataset_name,
    dataset_names,
    describe_datasets,
    load,
    register_dataset,
    resolve_data_root,
)
from noisybench.datasets import digits  # noqa: F401  (registers "digits")
from noisybench.datasets import cifar  # noqa: F401  (registers "cifar10", "cifar100")
from noisybench.datasets import mnist  # noqa: F401  (registers "mnist")
from noisybench.datasets import fashion_mnist  # noqa: F401  (registers "fashion-mnist")
from noisybench.datasets import animal10n  # noqa: F401  (registers "animal10n")
from noisybench.datasets import clothing1m  # noqa: F401  (registers "clothing1m")
from noisybench.datasets import food101n  # noqa: F401  (registers "food101n")
