"""Reference data: reading and normalising extended XYZ (:mod:`.read`), the checks that
stop bad data before any job (:mod:`.check`), the train/validation splits (:mod:`.split`) and
the statistics the memory model needs (:mod:`.stats`).

The public names of :mod:`.read`, :mod:`.check` and :mod:`.split` are re-exported here
(``from potune import data as D``).
"""

from .check import check_dataset, check_inputs, check_species, energy_scale_warning
from .read import (
    ALWAYS_TRAIN,
    CT,
    REF_E,
    REF_F,
    read_normalised,
    read_structures,
    species,
    species_of_file,
    write_structures,
    xyz_layout_error,
)
from .split import config_type_counts, kfold_split, random_split, seeded_subset, split_folds, training_subset

__all__ = [
    "ALWAYS_TRAIN",
    "CT",
    "REF_E",
    "REF_F",
    "check_dataset",
    "check_inputs",
    "check_species",
    "config_type_counts",
    "energy_scale_warning",
    "kfold_split",
    "random_split",
    "seeded_subset",
    "read_normalised",
    "read_structures",
    "species",
    "species_of_file",
    "split_folds",
    "training_subset",
    "write_structures",
    "xyz_layout_error",
]
