"""Diamond prices (ggplot2's diamonds): a regression of price on the 4 Cs.

A linear model of log price over one-hot cut, color and clarity and log carat.
The label is learned on the log scale (NumericLabel(transform="log")); predictions
and metrics are in dollars unless a metric asks for scale="log" (R² on log price).
The table has no test file: a seeded 80/20 split of the rows is part of the source.

Run it:            helix-tf run configs/diamonds_price.py
Change the loss:   helix-tf run configs/diamonds_price.py -p examples.loss=huber

The data is read from the shared data folder (--data-dir, $HELIX_TF_DATA, or
../shared/data). Where it is absent, the workflow runs on diamonds-like data that
helix_tf generates (same columns and format) and says so.
"""

import numpy as np

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import DIAMONDS_COLUMNS, diamonds_table

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("diamonds_price")
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
    cut = wf.feature("cut", F.Vocabulary("cut"))
    color = wf.feature("color", F.Vocabulary("color"))
    clarity = wf.feature("clarity", F.Vocabulary("clarity"))

    @wf.udf("log_carat", batched=True)
    def log_carat(batch):
        return np.log(batch["carat"].to_numpy(dtype=float))

    examples = wf.examples(
        "examples",
        [cut, color, clarity, log_carat],
        label=F.NumericLabel("price", transform="log"),
    )
    model = wf.train(
        "learner",
        examples,
        learners.Linear(optimizer="adam", learning_rate=0.05, epochs=10, batch_size=512),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.R2(scale="log"),
            metrics.RMSE(scale="log"),
            metrics.R2(),
            metrics.RMSE(),
            metrics.MAE(),
            metrics.MAPE(),
            metrics.Residuals(),
        )
    )
    return wf
