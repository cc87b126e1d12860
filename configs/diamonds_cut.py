"""Diamond cut grades (ggplot2's diamonds): 5-class classification of the cut.

A DNN (128-64) over the standardised measurements and price and embedded color
and clarity predicts Fair / Good / Very Good / Premium / Ideal (a softmax over
the declared classes). The table has no test file: a seeded 80/20 split of the
rows is part of the source.

Run it:            helix-tf run configs/diamonds_cut.py
Approximate:       helix-tf run configs/diamonds_cut.py --approx

The data is read from the shared data folder (--data-dir, $HELIX_TF_DATA, or
../shared/data). Where it is absent, the workflow runs on diamonds-like data that
helix_tf generates (same columns and format) and says so.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import DIAMONDS_COLUMNS, DIAMONDS_CUTS, diamonds_table

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("diamonds_cut")
    path = diamonds_table(params, wf)  # the shared copy, else generated look-alike data

    wf.source(
        "diamonds",
        sources.Csv(
            train=str(path),
            columns=DIAMONDS_COLUMNS,
            header=True,
            test_fraction=0.2,
            split_seed=0,
            replicate=int(params.scale),
        ),
    )
    numeric = [
        wf.feature(name, F.Numeric(name))
        for name in ("carat", "depth", "table", "price", "x", "y", "z")
    ]
    color = wf.feature("color", F.Vocabulary("color"))
    clarity = wf.feature("clarity", F.Vocabulary("clarity"))
    examples = wf.examples(
        "examples",
        [*numeric, color, clarity],
        label=F.MulticlassLabel("cut", classes=DIAMONDS_CUTS),
    )
    model = wf.train(
        "learner",
        examples,
        learners.DNN(
            hidden=(128, 64), learning_rate=0.003, epochs=20, batch_size=256, embedding_dim=8
        ),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.MulticlassAccuracy(),
            metrics.TopKAccuracy(k=2),
            metrics.MulticlassPrecisionRecallF1(),
            metrics.MulticlassLogLoss(),
            metrics.OneVsRestAUC(),
            metrics.MulticlassConfusionMatrix(),
        )
    )
    return wf
