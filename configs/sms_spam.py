"""SMS spam (SMS Spam Collection): a text workflow.

Lower-case, tokenise on non-letters, learn a vocabulary (min count 2) on the
training split, weight words by TF-IDF, train a linear model. The collection
has no test file: a seeded 80/20 split of the messages is part of the source.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import write_sms_like

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("sms_spam")
    folder = params.data("sms_spam")
    if folder is not None:
        path = folder / "SMSSpamCollection"
    else:
        path = write_sms_like(params.work_dir / "sample_data" / "sms_spam")
        wf.note(
            f"the SMS Spam Collection was not found; running on generated messages in {path.parent}"
        )

    wf.source(
        "messages",
        sources.Csv(
            train=str(path),
            columns=(("label", "string"), ("text", "string")),
            separator="\t",
            strip=False,
            na_values=(),
            rest_in_last=True,
            test_fraction=0.2,
            split_seed=0,
            replicate=int(params.scale),
        ),
    )
    tokens = wf.feature("tokens", F.Tokenize("text", lower=True, ngrams=(1,)))
    words = wf.feature("words", F.TfIdf(tokens, min_count=2))
    examples = wf.examples("examples", [words], label=F.Label("label", positive="spam"))
    model = wf.train(
        "learner", examples, learners.Linear(l2=1e-4, learning_rate=0.05, epochs=10, batch_size=256)
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation", predictions, metrics.Accuracy(), metrics.AUC(), metrics.PrecisionRecall()
        )
    )
    # The words that weigh most towards spam and ham: computed once per model.
    wf.output(wf.explain("explanation", model, examples))
    return wf
