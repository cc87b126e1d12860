"""sms10: the SMS spam workflow as a person iterates on it (benchmarks/iterative.py).

it00.py … it10.py are successive versions of this one config: each differs from
the previous only by the edit that the sms10 table of the benchmark's
SEQUENCES.md lists for it (``diff it02.py it03.py`` shows the edit). Node names
stay stable across versions so that unchanged results can be reused.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import write_sms_like

PARAMS = {"scale": 1}


def workflow(params):
    wf = Workflow("sms10")
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
    tokens = wf.feature("tokens", F.Tokenize("text", lower=True, ngrams=(1, 2)))
    words = wf.feature("words", F.Vocabulary(tokens, min_count=2))

    examples = wf.examples(
        "examples",
        [
            words,
        ],
        label=F.Label("label", positive="spam"),
    )
    model = wf.train(
        "learner",
        examples,
        learners.Linear(
            l2=1e-3,
            learning_rate=0.05,
            epochs=5,
            batch_size=256,
        ),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.Accuracy(),
        )
    )
    return wf
