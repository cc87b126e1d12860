"""Census income with engineered features: bucketize, a hashed cross, UDFs, slices.

The companion of ``configs/census.py`` (which stays the plain benchmark workflow):
the same data, with the feature operators a tabular workflow usually needs.

Run it:             helix-tf run configs/census_features.py
Try a wider model:  helix-tf run configs/census_features.py -p learner.l2=0.001
Keep what helped:   helix-tf run configs/census_features.py -p learner.l2=0.001 --save
"""

import numpy as np

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_CSV_OPTIONS, write_census_like

PARAMS = {"scale": 1}

#: Age boundaries of the buckets (a module constant a UDF could read too: editing it
#: invalidates exactly the nodes that use it).
AGE_BOUNDARIES = [18, 25, 30, 35, 40, 45, 50, 55, 60, 65]


def workflow(params):
    wf = Workflow("census_features")
    folder = params.data("census")
    if folder is not None:
        train, test = folder / "adult.data", folder / "adult.test"
    else:
        train, test = write_census_like(params.work_dir / "sample_data" / "census")
        wf.note(f"the UCI Adult data was not found; running on generated data in {train.parent}")
    wf.source(
        "rows",
        sources.Csv(
            train=str(train), test=str(test), replicate=int(params.scale), **CENSUS_CSV_OPTIONS
        ),
    )
    age = wf.feature("age", F.Numeric("age"))
    age_bucket = wf.feature("age_bucket", F.Bucketize("age", AGE_BOUNDARIES))
    hours = wf.feature("hours_per_week", F.Numeric("hours_per_week"))
    education = wf.feature("education", F.Vocabulary("education"))
    occupation = wf.feature("occupation", F.Vocabulary("occupation"))
    marital = wf.feature("marital_status", F.Vocabulary("marital_status"))
    sex = wf.feature("sex", F.Vocabulary("sex"))
    edu_x_occ = wf.feature("edu_x_occ", F.Cross([education, occupation], buckets=1000))

    @wf.udf("log_gain", batched=True)  # the fast form: one call per batch of rows
    def log_gain(batch):
        return np.log1p(batch["capital_gain"].fillna(0) + batch["capital_loss"].fillna(0))

    @wf.udf("overtime", output="categorical", size=2)  # one call per row: simple, slower
    def overtime(row):
        return int(row["hours_per_week"] > 40)

    examples = wf.examples(
        "examples",
        [
            age,
            age_bucket,
            hours,
            education,
            occupation,
            marital,
            sex,
            edu_x_occ,
            log_gain,
            overtime,
        ],
        label=F.Label("income", positive=">50K"),
    )
    model = wf.train(
        "learner",
        examples,
        learners.Linear(l2=1e-4, learning_rate=0.01, epochs=5, batch_size=1024),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.Accuracy(slice_by="sex"),  # overall and per value of sex
            metrics.AUC(),
            metrics.LogLoss(),
        )
    )
    return wf
