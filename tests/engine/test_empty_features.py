"""A feature that learned no value from the training split (QA pass 18).

``TfIdf(min_count=...)`` (or a token ``Vocabulary(oov_buckets=0)``) above every token's
count keeps no token: the feature's size is 0, and training failed inside Keras with
``indices[0,0] = 0 is not in [0, 0)`` and its traceback. The examples now fail naming
the feature and the fix; an approximate run whose sample at the source kept too few
rows for such a vocabulary draws its sample at training instead, as the exact run
learns it from every row.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import helix_tf
from helix_tf.errors import DataError
from tests.conftest import write_config

CONFIG = """\
PARAMS = {"min_count": 2}


def workflow(params):
    wf = Workflow("texts")
    columns = (("label", "string"), ("text", "string"))
    csv = sources.Csv(
        train=r"$train", columns=columns, separator="\\t", rest_in_last=True, test_fraction=0.25
    )
    wf.source("messages", csv)
    tokens = wf.feature("tokens", F.Tokenize("text"))
    words = wf.feature("words", F.TfIdf(tokens, min_count=params.min_count))
    examples = wf.examples("examples", [words], label=F.Label("label", positive="spam"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=32))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, metrics.Accuracy()))
    return wf
"""


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    """200 short messages: each word of the spam and ham vocabularies appears a few
    dozen times in all, a few times in a 5% sample."""
    rng = random.Random(0)
    spam, ham = ["win", "prize", "cash", "free"], ["see", "you", "later", "thanks"]
    lines = []
    for i in range(200):
        words = spam if i % 4 == 0 else ham
        lines.append(f"{'spam' if i % 4 == 0 else 'ham'}\t{rng.choice(words)}")
    path = tmp_path / "messages.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_config(tmp_path, CONFIG, train=path)


def test_a_feature_that_learned_no_value_is_named_with_the_fix(texts: Path, store: str) -> None:
    with pytest.raises(DataError) as caught:
        helix_tf.run(texts, store=store, params={"min_count": 1000})
    message = str(caught.value)
    assert "feature 'words'" in message and "min_count=1000" in message
    assert "learned no value" in message and "Lower min_count" in message


def test_an_approximate_run_learns_it_from_every_row_where_its_sample_learns_none(
    texts: Path, store: str
) -> None:
    # A 5% sample holds each word about twice: a vocabulary of min_count 5 learns none of
    # them from it, and every one of them (~37 rows a word) from the whole split.
    approx = helix_tf.Approx(sample=0.05, seed=1, min_saving_seconds=0)
    result = helix_tf.run(texts, store=store, params={"min_count": 5}, approx=approx)
    assert result.approx
    assert any("feature 'words'" in n and "at training" in n for n in result.notes)
