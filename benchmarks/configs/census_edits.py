"""configs/census.py with the evaluation threshold as a parameter, so an
evaluation-only edit can be made from the command line (-p threshold=0.35)."""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_COLUMNS

PARAMS = {"scale": 1, "threshold": 0.5}


def workflow(params):
    wf = Workflow("census_edits")
    folder = params.data("census")
    wf.source(
        "rows",
        sources.Csv(
            train=str(folder / "adult.data"),
            test=str(folder / "adult.test"),
            columns=CENSUS_COLUMNS,
            skip_lines={"test": 1},
            replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}},
            replicate=int(params.scale),
        ),
    )
    feats = [wf.feature(c, F.Numeric(c)) for c in ("age", "hours_per_week", "capital_gain")]
    feats += [
        wf.feature(c, F.Vocabulary(c))
        for c in ("education", "occupation", "marital_status", "relationship", "sex")
    ]
    examples = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(l2=1e-4, learning_rate=0.01, epochs=5))
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.Accuracy(),
            metrics.PrecisionRecall(threshold=float(params.threshold)),
        )
    )
    return wf
