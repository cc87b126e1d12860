"""census10: the census workflow as a person iterates on it (benchmarks/iterative.py).

it00.py … it10.py are successive versions of this one config: each differs from
the previous only by the edit that the census10 table of the benchmark's
SEQUENCES.md lists for it (``diff it02.py it03.py`` shows the edit). Node names
stay stable across versions so that unchanged results can be reused.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_COLUMNS, write_census_like

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("census10")
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
        [
            age,
            hours,
            gain,
            education,
            occupation,
            marital,
            relationship,
            sex,
        ],
        label=F.Label("income", positive=">50K"),
    )
    model = wf.train(
        "learner",
        examples,
        learners.Linear(
            l2=1e-4,
            optimizer="adam",
            learning_rate=0.01,
            epochs=5,
            batch_size=1024,
        ),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.Accuracy(),
            metrics.AUC(),
            metrics.PrecisionRecall(),
        )
    )
    return wf
