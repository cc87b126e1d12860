"""Census preprocessing only: the source and features of ``configs/census.py``, no model.

Used by ``benchmarks/preprocess_scale.py``. The output is the examples node, so
a run computes exactly the fused Beam pipeline (read the CSVs, learn mean/std and
vocabularies on the training split, write the examples as Parquet) and nothing else.

Run it:  helix-tf run benchmarks/configs/census_preprocess.py -p scale=100 --materialize none
"""

from helix_tf import Workflow, features as F, sources
from helix_tf.sample_data import CENSUS_COLUMNS, write_census_like

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("census_preprocess")
    folder = params.data("census")
    if folder is not None:
        train, test = folder / "adult.data", folder / "adult.test"
    else:
        train, test = write_census_like(params.work_dir / "sample_data" / "census")
        wf.note(
            f"the UCI Adult data was not found; running on generated census-like data in {train.parent}"
        )

    wf.source(
        "rows",
        sources.Csv(
            train=str(train),
            test=str(test),
            columns=CENSUS_COLUMNS,
            separator=",",
            skip_lines={"test": 1},
            replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}},
            replicate=int(params.scale),
        ),
    )
    age = wf.feature("age", F.Numeric("age"))
    hours = wf.feature("hours_per_week", F.Numeric("hours_per_week"))
    gain = wf.feature("capital_gain", F.Numeric("capital_gain"))
    education = wf.feature("education", F.Vocabulary("education"))
    occupation = wf.feature("occupation", F.Vocabulary("occupation"))
    marital = wf.feature("marital_status", F.Vocabulary("marital_status"))
    relationship = wf.feature("relationship", F.Vocabulary("relationship"))
    sex = wf.feature("sex", F.Vocabulary("sex"))

    examples = wf.examples(
        "examples",
        [age, hours, gain, education, occupation, marital, relationship, sex],
        label=F.Label("income", positive=">50K"),
    )
    wf.output(examples)
    return wf
