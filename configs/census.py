"""Census income (UCI Adult): will a person earn more than $50K a year?

Run it:            helix-tf run configs/census.py
Change a learner:  helix-tf run configs/census.py -p learner.l2=0.001
Benchmark scale:   helix-tf run configs/census.py -p scale=10   (training rows x10)

The data is read from the shared data folder (--data-dir, $HELIX_TF_DATA, or
../shared/data). Where it is absent, the workflow runs on census-like data that
helix_tf generates (same columns and format) and says so.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_COLUMNS, write_census_like

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("census")
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
    model = wf.train(
        "learner",
        examples,
        learners.Linear(l2=1e-4, optimizer="adam", learning_rate=0.01, epochs=5, batch_size=1024),
    )
    predictions = wf.predict("predictions", model, examples)
    # AUC over all rows and per value of "sex": the report charts the slices.
    wf.output(
        wf.evaluate("evaluation", predictions, metrics.Accuracy(), metrics.AUC(slice_by="sex"))
    )
    # What the model learned per feature (importance, weights): computed once per model.
    wf.output(wf.explain("explanation", model, examples))
    return wf
