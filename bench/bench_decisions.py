"""Trade decisions for 500 symbols, end to end (target: under 2 s on 2 cores).

Usage: python -m bench.bench_decisions [--symbols 500] [--repeats 5]

Inputs: a seeded one-factor market (``tests.decision_inputs``): 500 symbols x 260 trading days of returns
and one-step vol forecasts, features, calibrated signals, positions in 30% of the symbols, an equity curve
and the regime probabilities. ``decide`` is timed end to end — input checks, FHS scenarios, Ledoit–Wolf
covariance, per-symbol and portfolio CVaR, Kelly, regime multiplier, caps, budget, lots and the
largest-remainder lot top-up, costs, schedules, version hash — with two cost models: the square-root
law (a stub) and a real LightGBM slippage model fitted beforehand on simulated fills (fitting not
timed); and once with ``risk.lot_top_up: false`` (plain rounding toward zero), the cost of the top-up.

Baseline, in the same process: ``decide`` with every CVaR — the portfolio's and each symbol's, long and
short — solved as Rockafellar & Uryasev's linear program (scipy HiGHS), the textbook way, one LP per
symbol in a Python loop, instead of the sort-based exact minimiser vectorised over symbols. Both give
the same decision (asserted: same version and CVaR).
"""

from __future__ import annotations

import argparse
import datetime as dt
from unittest import mock

import numpy as np
from scipy.optimize import linprog

from bench.harness import Timing, median_time, report
from mem_pipeline.decisions.checks import run_checks
from mem_pipeline.decisions.sample_inputs import DECISION_DATE, decide_frames, make_inputs, sqrt_cost_model
from mem_pipeline.ingest.sources.synthetic import SyntheticConfig, generate_market, simulate_fills
from mem_pipeline.models.slippage import SlippageConfig, fit_slippage
from mem_pipeline.risk import RiskConfig

BASELINE = "decide, every CVaR as an RU linear program (scipy HiGHS, per-symbol loop)"


def ru_linear_program(scenario_returns: np.ndarray, notionals: np.ndarray, alpha: float) -> float:
    """min zeta + sum(u) / ((1 - alpha) T)  s.t.  u_t >= L_t - zeta, u_t >= 0."""
    losses = -(scenario_returns @ notionals)
    t = losses.size
    c = np.r_[1.0, np.full(t, 1.0 / ((1 - alpha) * t))]
    a_ub = np.hstack([-np.ones((t, 1)), -np.eye(t)])
    result = linprog(c, A_ub=a_ub, b_ub=-losses, bounds=[(None, None)] + [(0, None)] * t, method="highs")
    return float(result.fun)


def ru_var_cvar_loop(losses: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the RU linear program (CVaR); VaR from the sort (it is not timed separately)."""
    losses = np.asarray(losses, dtype=np.float64)
    columns = losses.reshape(losses.shape[0], -1)
    cvars = np.array([ru_linear_program(-columns[:, [j]], np.ones(1), alpha) for j in range(columns.shape[1])])
    var = np.sort(columns, axis=0)[min(int(np.ceil(alpha * columns.shape[0] - 1e-9)), columns.shape[0]) - 1]
    return var.reshape(losses.shape[1:]), cvars.reshape(losses.shape[1:])


def fitted_slippage_model():
    end = np.busday_offset(np.datetime64(dt.date(2015, 1, 1)), 399).item()
    market = generate_market(SyntheticConfig(seed=7, n_symbols=30, start=dt.date(2015, 1, 1), end=end))
    return fit_slippage(simulate_fills(market, 30_000, seed=17), SlippageConfig(n_estimators=100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    inputs = make_inputs(n_symbols=args.symbols, n_days=260, seed=1)
    slippage = fitted_slippage_model()
    results = {}

    def run(cost_model, **kwargs) -> None:
        results["decision"], results["assessment"] = decide_frames(
            DECISION_DATE, cost_model=cost_model, **inputs, **kwargs
        )

    no_top_up = median_time(lambda: run(sqrt_cost_model, risk_config=RiskConfig(lot_top_up=False)), args.repeats)
    plain = results["decision"].report
    stub = median_time(lambda: run(sqrt_cost_model), repeats=args.repeats)
    stub_decision = results["decision"]
    real = median_time(lambda: run(slippage.predict), repeats=args.repeats)
    decision = results["decision"]
    with (
        mock.patch("mem_pipeline.risk.scenarios.portfolio_cvar", ru_linear_program),
        mock.patch("mem_pipeline.risk.scenarios.var_cvar", ru_var_cvar_loop),
    ):
        lp = median_time(lambda: run(sqrt_cost_model), repeats=min(args.repeats, 3))
        assert results["decision"].version == stub_decision.version
        assert np.isclose(results["decision"].report["portfolio_cvar"], stub_decision.report["portfolio_cvar"])
        lp_targets = results["decision"].targets["symbol_cvar"].to_numpy()
        assert np.allclose(lp_targets, stub_decision.targets["symbol_cvar"].to_numpy(), rtol=1e-6, atol=1e-9)

    assert all(c.passed for c in run_checks(decision, results["assessment"]).values())
    r = decision.report
    notes = (
        f"{args.symbols} symbols x {r['n_scenarios']} days; {r['n_orders']} orders, {r['lot_top_ups']} top-up lots; "
        f"gross {r['gross_exposure']:.0f}; CVaR {r['portfolio_cvar']:.2f} / budget {r['cvar_budget']:.2f}; target < 2 s"
    )
    plain_notes = f"{plain['n_orders']} orders; gross {plain['gross_exposure']:.0f}"
    report(
        f"Trade decisions, {args.symbols} symbols (decide end to end)",
        [
            Timing(BASELINE, lp, min(args.repeats, 3)),
            Timing("decide, square-root cost stub", stub, args.repeats, notes),
            Timing("decide, fitted LightGBM slippage model", real, args.repeats),
            Timing("decide, square-root cost stub, lot top-up off", no_top_up, args.repeats, plain_notes),
        ],
        baseline=BASELINE,
    )


if __name__ == "__main__":
    main()
