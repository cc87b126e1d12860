"""An edit of a config's SEARCH alone is a new study (QA 27): SEARCH is no part of the
workflow, so a running agent went on searching the old space and `agent report` showed
its proposals as the config's now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution

from helix_tf import history
from helix_tf.agent._proposals import load_report
from helix_tf.agent._study import AgentPaths, open_study, study_name
from helix_tf.search import declared_space
from helix_tf.validation import Validation
from tests.conftest import TINY_CENSUS

SEARCHED = TINY_CENSUS.replace(
    'PARAMS = {"epochs": 1}',
    "from helix_tf import search\n"
    'PARAMS = {"epochs": 1}\n'
    'SEARCH = {"learner.learning_rate": search.Float(0.01, 0.5)}',
)


def _name(cfg: Path) -> str:
    view = history.describe(cfg, validation=Validation())
    return study_name(view.name, view.digest, declared_space(cfg))


def test_a_declared_space_names_the_study_and_a_derived_one_does_not(
    make_config: Callable[..., Path], census_like: tuple[Path, Path]
) -> None:
    train, test = census_like
    cfg = make_config(SEARCHED, train=train, test=test)
    first = _name(cfg)
    assert first == _name(cfg) and "~" in first
    cfg.write_text(cfg.read_text().replace("Float(0.01, 0.5)", "Float(0.01, 0.2)"))
    assert _name(cfg) != first and _name(cfg).split("~")[0] == first.split("~")[0]
    plain = make_config(TINY_CENSUS, train=train, test=test)
    view = history.describe(plain, validation=Validation())
    assert declared_space(plain) is None and _name(plain) == study_name(view.name, view.digest)


def test_a_report_after_an_edit_of_search_alone_is_stale(
    make_config: Callable[..., Path], census_like: tuple[Path, Path]
) -> None:
    train, test = census_like
    cfg = make_config(SEARCHED, train=train, test=test)
    study = open_study(AgentPaths.of(cfg), _name(cfg), create=True)
    study.set_user_attr("metric", "auc")
    study.set_user_attr(
        "space", {"declared": True, "dimensions": {"learner.learning_rate": {"current": 0.05}}}
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"learner.learning_rate": 0.07},
            distributions={"learner.learning_rate": FloatDistribution(0.01, 0.5)},
            value=0.8,
            user_attrs={"rung_exact": {"metrics": {"auc": 0.8}}},
        )
    )
    assert not load_report(cfg).stale
    cfg.write_text(cfg.read_text().replace("Float(0.01, 0.5)", "Float(0.1, 0.5)"))
    assert load_report(cfg).stale
    # A SEARCH that no longer passes its checks cannot be the study's either.
    cfg.write_text(cfg.read_text().replace("Float(0.1, 0.5)", "Float(0.1, 0.5), 'nosuch.x': 1"))
    assert load_report(cfg).stale
