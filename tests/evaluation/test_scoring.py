"""The compiled scorer gives the probabilities Keras' predict gives, for every output kind."""

import keras
import numpy as np
import pytest

from lottery_engine.evaluation import metrics
from lottery_engine.evaluation.scoring import SplitScorer
from lottery_engine.models import builders as models

from tests.user_models import digits, functional_model


@pytest.mark.parametrize("kind", ["softmax", "logits", "sigmoid"])
def test_scorer_probabilities_match_predict_and_follow_the_weights(kind):
    x, _ = digits(250)  # 250: the last batch of 100 is partial
    if kind == "logits":
        model, logits = functional_model(), True
    else:
        keras.utils.set_random_seed(0)
        model, logits = models.lenet_300_100((8, 8, 1), 2 if kind == "sigmoid" else 10), False
    scorer = SplitScorer(model, x, logits, batch_size=100)
    np.testing.assert_allclose(scorer.probabilities(),
                               metrics.predict_proba(model, x, logits=logits), atol=1e-6)
    assert scorer.probabilities().shape == (250, 2 if kind == "sigmoid" else 10)
    model.set_weights([w * 0.5 for w in model.get_weights()])  # the model as it is at each call
    np.testing.assert_allclose(scorer.probabilities(),
                               metrics.predict_proba(model, x, logits=logits), atol=1e-6)
