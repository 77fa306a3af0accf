"""Dataset loaders (no noise here).  Importing the package registers every loader."""
from datasets.registry import (  # noqa: F401
    DATA_ROOT_ENV,
    Dataset,
    check_dataset_name,
    dataset_names,
    describe_datasets,
    load,
    register_dataset,
    resolve_data_root,
)
from datasets import digits  # noqa: F401  (registers "digits")
from datasets import cifar  # noqa: F401  (registers "cifar10", "cifar100")
from datasets import mnist  # noqa: F401  (registers "mnist")
from datasets import animal10n  # noqa: F401  (registers "animal10n")
from datasets import clothing1m  # noqa: F401  (registers "clothing1m")
from datasets import food101n  # noqa: F401  (registers "food101n")

PROJECT_MARKER = "noisybench"
