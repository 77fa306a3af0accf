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

PROJECT_MARKER = "noisybench"
