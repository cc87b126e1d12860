"""sms10: the SMS spam workflow as a person iterates on it (benchmarks/iterative.py).

it00.py … it10.py are successive versions of this one config: each differs from
the previous only by the edit that the sms10 table of the benchmark's
SEQUENCES.md lists for it (``diff it02.py it03.py`` shows the edit). Node names
stay stable across versions so that unchanged results can be reused.
"""

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import write_sms_like

PARAMS = {"scale": 1}

URL = r"(?i)https?://|www\.|\.(?:com|co\.uk|net|org)\b"
UPPER_WORD = r"\b[A-Z]{2,}\b"
SHORT_MESSAGE = 80  # characters


def accuracy_by_length(y_true, y_score, frame):
    """Accuracy of short (<= SHORT_MESSAGE characters) and long messages."""
    short = (frame["text"].str.len() <= SHORT_MESSAGE).to_numpy()
    right = (y_score >= 0.5) == (y_true == 1)
    return {
        "short": float(right[short].mean()) if short.any() else float("nan"),
        "long": float(right[~short].mean()) if (~short).any() else float("nan"),
    }


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
    words = wf.feature("words", F.TfIdf(tokens, min_count=2))

    @wf.udf("length_raw", batched=True)
    def length_raw(batch):
        return batch["text"].str.len()

    @wf.udf("digits_raw", batched=True)
    def digits_raw(batch):
        return batch["text"].str.count(r"[0-9]")

    @wf.udf("has_url_raw", batched=True)
    def has_url_raw(batch):
        return batch["text"].str.contains(URL, regex=True).astype(float)

    @wf.udf("upper_words_raw", batched=True)
    def upper_words_raw(batch):
        return batch["text"].str.count(UPPER_WORD)

    length = wf.feature("length", F.Numeric(length_raw))
    digits = wf.feature("digits", F.Numeric(digits_raw))
    has_url = wf.feature("has_url", F.Numeric(has_url_raw))
    upper_words = wf.feature("upper_words", F.Numeric(upper_words_raw))

    examples = wf.examples(
        "examples",
        [
            words,
            length,
            digits,
            has_url,
            upper_words,
        ],
        label=F.Label("label", positive="spam"),
    )
    model = wf.train(
        "learner",
        examples,
        learners.Linear(
            l2=1e-3,
            learning_rate=0.05,
            epochs=10,
            batch_size=256,
        ),
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(
        wf.evaluate(
            "evaluation",
            predictions,
            metrics.Accuracy(),
            metrics.PrecisionRecall(),
            metrics.ConfusionMatrix(),
            metrics.Custom(
                name="accuracy_by_length", fn=accuracy_by_length, frame_columns=("text",)
            ),
        )
    )
    return wf
