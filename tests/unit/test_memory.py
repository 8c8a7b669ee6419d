"""The decision memory: closed-form replay probabilities, IS correction, no lookahead, persistence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mem_pipeline.memory.decision_memory import DecisionMemory, DecisionMemoryError, MemoryConfig

D0 = dt.date(2024, 1, 1)


def day(k: int) -> dt.date:
    return D0 + dt.timedelta(days=k)


def decisions(expected: list[float], dates: list[dt.date] | None = None, prefix: str = "d") -> pl.DataFrame:
    n = len(expected)
    return pl.DataFrame(
        {
            "decision_id": [f"{prefix}{i}" for i in range(n)],
            "symbol": ["BTC" if i % 2 else "ETH" for i in range(n)],
            "trade_date": dates or [D0] * n,
            "expected": expected,
            "weight": [1.0] * n,
            "strategy": ["test"] * n,
        }
    )


def memory(expected: list[float], realized: list[float], config: MemoryConfig | None = None) -> DecisionMemory:
    """All decisions on D0 (1-day horizon), all outcomes known on day(1)."""
    m = DecisionMemory(config)
    m.record(decisions(expected))
    m.record_outcomes(pl.DataFrame({"decision_id": [f"d{i}" for i in range(len(realized))], "realized": realized}))
    return m


AS_OF = day(1)


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------


def test_probabilities_match_closed_form_by_hand() -> None:
    # surprises |r - e| = 0.1, 0.3, 0.0, 0.2; epsilon 0.1 -> p = 0.2, 0.4, 0.1, 0.3 (sum 1.0)
    expected, realized = [0.0, 0.1, 0.05, 0.0], [0.1, -0.2, 0.05, -0.2]
    m1 = memory(expected, realized, MemoryConfig(alpha=1.0, beta=1.0, epsilon=0.1))
    assert m1.priorities(AS_OF) == pytest.approx([0.2, 0.4, 0.1, 0.3])
    assert m1.probabilities(AS_OF) == pytest.approx([0.2, 0.4, 0.1, 0.3])
    # beta = 1, N = 4: (N P)^-1 = 1.25, 0.625, 2.5, 0.8333..; divided by the max 2.5
    assert m1.is_weights(AS_OF) == pytest.approx([0.5, 0.25, 1.0, 1 / 3])

    # alpha = 2: p^2 = 0.04, 0.16, 0.01, 0.09 (sum 0.30)
    m2 = memory(expected, realized, MemoryConfig(alpha=2.0, epsilon=0.1))
    assert m2.probabilities(AS_OF) == pytest.approx([0.04 / 0.3, 0.16 / 0.3, 0.01 / 0.3, 0.09 / 0.3])


def test_alpha_zero_is_uniform() -> None:
    m = memory([0.0] * 5, [0.0, 0.5, -2.0, 0.01, 1.0], MemoryConfig(alpha=0.0, beta=0.7))
    assert m.probabilities(AS_OF) == pytest.approx([0.2] * 5)
    assert m.is_weights(AS_OF) == pytest.approx([1.0] * 5)  # N P = 1 for every row
    assert m.sample_weights(AS_OF) == pytest.approx([1.0] * 5)


def test_beta_one_is_weights_cancel_the_sampling_bias() -> None:
    rng = np.random.default_rng(7)
    n_rows = 20
    expected = rng.normal(0, 0.01, n_rows).tolist()
    realized = (np.array(expected) + rng.standard_t(3, n_rows) * 0.02).tolist()
    f = np.abs(np.array(realized) - np.array(expected)) * 100  # the surprise: the quantity P biases most
    uniform_mean = f.mean()

    m = memory(expected, realized, MemoryConfig(alpha=1.0, beta=1.0, seed=3))
    probs, w = m.probabilities(AS_OF), m.is_weights(AS_OF)
    c = n_rows * probs.min()  # the max-normalization constant: w_i = c / (N P_i)
    # exact: E_P[w f] = c * uniform mean of f, E_P[w] = c
    assert (probs * w * f).sum() == pytest.approx(c * uniform_mean, rel=1e-12)
    assert (probs * w).sum() == pytest.approx(c, rel=1e-12)

    # numerically, with many draws: the Monte Carlo mean of w f / c has sd sigma / sqrt(n),
    # sigma^2 = Var_P(w f / c) computed exactly; 5 sd is a ~1e-6 false-alarm bound.
    n = 200_000
    s = m.sample(n, AS_OF)
    estimate = (s.weights * f[s.indices]).mean() / c
    sigma = np.sqrt((probs * (w * f / c) ** 2).sum() - uniform_mean**2)
    tol = 5 * sigma / np.sqrt(n)
    assert abs(estimate - uniform_mean) < tol

    # without the correction the same estimator is visibly biased (the test above has power)
    biased = (probs * f).sum()
    assert abs(biased - uniform_mean) > 10 * tol


def test_empirical_frequencies_converge_to_p() -> None:
    rng = np.random.default_rng(11)
    k = 10
    m = memory([0.0] * k, rng.normal(0, 0.05, k).tolist(), MemoryConfig(alpha=0.8, seed=5))
    probs = m.probabilities(AS_OF)
    n = 100_000
    counts = np.bincount(m.sample(n, AS_OF).indices, minlength=k)
    freq = counts / n
    # per cell: binomial sd sqrt(P(1-P)/n); 5 sd on each of 10 cells -> < 1e-5 chance of a false alarm
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n))
    # and jointly: Pearson chi-square with k - 1 = 9 df, below its 0.999 quantile (27.877)
    chi2 = ((counts - n * probs) ** 2 / (n * probs)).sum()
    assert chi2 < 27.877


def test_sample_returns_consistent_probabilities_and_weights() -> None:
    m = memory([0.0, 0.0, 0.0], [0.1, 0.2, 0.4], MemoryConfig(beta=0.5))
    s = m.sample(50, AS_OF)
    assert s.indices.shape == s.probabilities.shape == s.weights.shape == (50,)
    assert s.eligible == 3
    assert np.array_equal(s.probabilities, m.probabilities(AS_OF)[s.indices])
    expected_w = (3 * s.probabilities) ** -0.5 / ((3 * m.probabilities(AS_OF)) ** -0.5).max()
    assert s.weights == pytest.approx(expected_w)
    assert list(s.decision_ids) == [f"d{i}" for i in s.indices]


def test_sample_weights_formula_and_mean_one() -> None:
    m = memory([0.0] * 4, [0.1, 0.3, 0.0, -0.2], MemoryConfig(alpha=1.0, beta=0.5, epsilon=0.1))
    probs = np.array([0.2, 0.4, 0.1, 0.3])
    s = m.sample_weights(AS_OF)
    assert s == pytest.approx(4 * probs**0.5 / (probs**0.5).sum())
    assert s.mean() == pytest.approx(1.0)
    full = memory([0.0] * 4, [0.1, 0.3, 0.0, -0.2], MemoryConfig(alpha=1.0, beta=1.0, epsilon=0.1))
    assert full.sample_weights(AS_OF) == pytest.approx([1.0] * 4)


# ---------------------------------------------------------------------------------------------
# No lookahead
# ---------------------------------------------------------------------------------------------


def lookahead_memory() -> DecisionMemory:
    """d0, d1 traded D0 (known day 1); d2 traded D0 with a 5-day horizon (known day 5);
    d3 traded day 2 (known day 3, late report on day 4); d4 traded day 3, never resolved."""
    m = DecisionMemory(MemoryConfig(alpha=1.0, beta=0.5, seed=1))
    frame = decisions([0.0] * 5, [D0, D0, D0, day(2), day(3)]).with_columns(horizon_days=pl.Series([1, 1, 5, 1, 1]))
    m.record(frame)
    m.record_outcomes(
        pl.DataFrame(
            {
                "decision_id": ["d0", "d1", "d2", "d3"],
                "realized": [0.01, -0.02, 0.50, 0.90],  # the unknown rows have the largest surprise
                "known_date": [day(1), day(1), day(5), day(4)],
            }
        )
    )
    return m


def test_rows_unknown_at_as_of_are_never_sampled_and_weigh_zero() -> None:
    m = lookahead_memory()
    as_of = day(3)
    assert m.known_mask(as_of).tolist() == [True, True, False, False, False]
    s = m.sample(20_000, as_of)
    assert set(s.indices.tolist()) == {0, 1}
    assert s.eligible == 2
    assert m.probabilities(as_of)[2:].tolist() == [0.0, 0.0, 0.0]
    assert m.is_weights(as_of)[2:].tolist() == [0.0, 0.0, 0.0]
    sw = m.sample_weights(as_of)
    assert sw[2:].tolist() == [0.0, 0.0, 0.0]
    assert sw[:2].mean() == pytest.approx(1.0)

    # later, the outcomes become known and enter the replay
    assert m.known_mask(day(4)).tolist() == [True, True, False, True, False]
    assert m.known_mask(day(5)).tolist() == [True, True, True, True, False]
    assert set(m.sample(5_000, day(5)).indices.tolist()) == {0, 1, 2, 3}

    with pytest.raises(DecisionMemoryError, match="no decision has a known outcome"):
        m.sample(1, D0)


def test_view_blanks_unknown_outcomes_and_summarizes() -> None:
    m = lookahead_memory()
    v = m.view(2, day(3))  # last 2 trading dates <= day 3 among {D0, day 2, day 3}: day 2, day 3
    assert v.rows["decision_id"].to_list() == ["d3", "d4"]
    assert v.count == 2 and v.known == 0
    assert v.rows["realized"].null_count() == 2  # d3's outcome is only known on day 4
    assert v.mean_surprise is None and v.hit_rate is None

    short = m.view("short", day(5))  # 5 trading dates: all
    assert short.count == 5 and short.known == 4
    assert short.mean_surprise == pytest.approx((0.01 + 0.02 + 0.50 + 0.90) / 4)
    assert short.hit_rate is None  # every expected is 0: no direction to hit

    m2 = DecisionMemory()
    m2.record(decisions([0.01, -0.01, 0.02], [day(0), day(1), day(2)]))
    m2.record_outcomes(pl.DataFrame({"decision_id": ["d0", "d1", "d2"], "realized": [0.03, 0.02, 0.01]}))
    v2 = m2.view(2, day(3))
    assert v2.rows["decision_id"].to_list() == ["d1", "d2"]
    assert v2.hit_rate == pytest.approx(0.5)
    assert v2.mean_surprise == pytest.approx((0.03 + 0.01) / 2)
    assert set(m2.views(day(3))) == {"short", "medium", "long"}


# ---------------------------------------------------------------------------------------------
# Determinism and persistence
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_samples() -> None:
    args = ([0.0] * 6, [0.1, 0.2, 0.3, -0.1, 0.0, 0.05])
    a = memory(*args, MemoryConfig(seed=42))
    b = memory(*args, MemoryConfig(seed=42))
    c = memory(*args, MemoryConfig(seed=43))
    first_a, first_b = a.sample(100, AS_OF), b.sample(100, AS_OF)
    assert np.array_equal(first_a.indices, first_b.indices)
    assert np.array_equal(a.sample(100, AS_OF).indices, b.sample(100, AS_OF).indices)  # the streams stay in step
    assert not np.array_equal(first_a.indices, c.sample(100, AS_OF).indices)
    r1 = a.sample(100, AS_OF, rng=np.random.default_rng(9)).indices
    r2 = c.sample(100, AS_OF, rng=np.random.default_rng(9)).indices
    assert np.array_equal(r1, r2)


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = lookahead_memory()
    path = tmp_path / "memory" / "journal.parquet"
    digest = m.save(path)
    assert len(digest) == 64
    assert [p.name for p in path.parent.iterdir()] == ["journal.parquet"]  # no temp file left behind
    loaded = DecisionMemory.load(path, m.config)
    assert loaded.journal.equals(m.journal)
    assert loaded.journal.schema == m.journal.schema
    fresh = lookahead_memory()  # same config, untouched rng: the loaded memory draws the same
    assert np.array_equal(loaded.sample(50, day(5)).indices, fresh.sample(50, day(5)).indices)
    assert m.save(path) == digest  # same journal, same bytes
    with pytest.raises(DecisionMemoryError, match="no saved decision memory"):
        DecisionMemory.load(tmp_path / "missing.parquet")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_record_outcomes_refuses_an_outcome_before_its_decision() -> None:
    m = DecisionMemory()
    m.record(decisions([0.01, 0.02], [day(3), day(3)]))
    before = m.journal
    bad = pl.DataFrame({"decision_id": ["d0", "d1"], "realized": [0.1, 0.2], "known_date": [day(4), day(2)]})
    with pytest.raises(DecisionMemoryError, match=r"before the decision's trade_date.*'d1'"):
        m.record_outcomes(bad)
    assert m.journal.equals(before)  # all or nothing: d0 was not recorded either


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        (pl.DataFrame({"decision_id": ["zz"], "realized": [0.1]}), "no recorded decision"),
        (pl.DataFrame({"decision_id": ["d0", "d0"], "realized": [0.1, 0.1]}), "repeated"),
        (pl.DataFrame({"decision_id": ["d0"], "realized": [float("nan")]}), "non-finite"),
        (pl.DataFrame({"decision_id": ["d0"], "realized": [None]}, schema_overrides={"realized": pl.Float64}), "nulls"),
        (pl.DataFrame({"decision_id": ["d0"]}), "missing columns"),
        # same day as the trade, but the 1-day return is not realized until the next day
        (pl.DataFrame({"decision_id": ["d0"], "realized": [0.1], "known_date": [day(3)]}), "not realized yet"),
    ],
)
def test_record_outcomes_validation(outcomes: pl.DataFrame, message: str) -> None:
    m = DecisionMemory()
    m.record(decisions([0.01], [day(3)]))
    with pytest.raises(DecisionMemoryError, match=message):
        m.record_outcomes(outcomes)


def test_outcomes_are_append_only_and_idempotent() -> None:
    m = memory([0.0, 0.0], [0.1, 0.2])
    m.record_outcomes(pl.DataFrame({"decision_id": ["d0"], "realized": [0.1]}))  # same again: fine
    with pytest.raises(DecisionMemoryError, match="already recorded"):
        m.record_outcomes(pl.DataFrame({"decision_id": ["d0"], "realized": [0.5]}))
    assert m.journal["realized"].to_list() == [0.1, 0.2]


def test_record_validation() -> None:
    m = DecisionMemory()
    m.record(decisions([0.01]))
    with pytest.raises(DecisionMemoryError, match="already recorded"):
        m.record(decisions([0.01]))
    with pytest.raises(DecisionMemoryError, match="repeated in the batch"):
        m.record(pl.concat([decisions([0.0], prefix="x"), decisions([0.0], prefix="x")]))
    with pytest.raises(DecisionMemoryError, match="missing columns"):
        m.record(decisions([0.0], prefix="y").drop("strategy"))
    assert len(m) == 1


def test_config_from_params() -> None:
    c = MemoryConfig.from_params({"alpha": 1, "beta": 0.5, "short_horizon": 3, "seed": 7})
    assert (c.alpha, c.beta, c.short_horizon, c.seed) == (1.0, 0.5, 3, 7)
    assert MemoryConfig.from_params(c.to_params()) == c
    assert MemoryConfig.from_params(None) == MemoryConfig()
    with pytest.raises(DecisionMemoryError, match="unknown keys"):
        MemoryConfig.from_params({"gamma": 1})
    with pytest.raises(DecisionMemoryError, match="memory.beta"):
        MemoryConfig.from_params({"beta": 1.5})
    with pytest.raises(DecisionMemoryError, match="horizons"):
        MemoryConfig(short_horizon=30, medium_horizon=21)


def test_direction_calls_are_journaled_in_probability_units_and_weight_only_their_rows() -> None:
    from mem_pipeline.memory.decision_memory import direction_decisions, row_weights

    d0, d1, d2 = dt.date(2024, 1, 5), dt.date(2024, 1, 8), dt.date(2024, 1, 9)  # a Friday, Monday, Tuesday
    oos = pl.DataFrame(
        {
            "symbol": ["A", "B", "A"],
            "trade_date": [d0, d0, d1],
            "p": [0.7, 0.4, 0.55],
            "up_1d": [1, 1, 0],
            "known_date": [d1, d1, d2],
        }
    )
    decisions, outcomes = direction_decisions(oos, "p")
    memory = DecisionMemory(MemoryConfig(alpha=1.0, beta=0.0, epsilon=1e-9))
    memory.record(decisions)
    memory.record_outcomes(outcomes)
    j = memory.journal
    assert j["horizon_days"].to_list() == [3, 3, 1]  # the weekend: Friday's outcome is known on Monday
    # Surprise |realized - expected| = |up - p|: 0.3, 0.6, 0.55.
    assert np.allclose((j["realized"] - j["expected"]).abs().to_numpy(), [0.3, 0.6, 0.55])
    assert j["weight"].to_list() == [1.0, -1.0, 1.0]
    # As of Monday only Friday's calls are known; beta = 0, alpha = 1: weights N P(i) = 2 p_i / sum p.
    rows = pl.DataFrame({"symbol": ["A", "Z", "B", "A"], "trade_date": [d0, d0, d0, d1]})
    w = row_weights(memory, rows, d1)
    assert np.allclose(w, [2 * 0.3 / 0.9, 1.0, 2 * 0.6 / 0.9, 1.0])
