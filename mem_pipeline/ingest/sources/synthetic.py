"""A seeded multi-asset daily market with known ground truth, and the ``synthetic`` source.

Generation model (daily log returns; business days are Mon-Fri, no holidays):

* Regimes: a Markov chain ``s_t`` on ``n_regimes`` states with the configured transition matrix,
  started from its stationary distribution. States are ordered by factor volatility (0 = calm).
* Market factor: ``f_t = mu[s_t] + sigma_f[s_t] * eps_t``.
* Sector factors: ``g_{k,t} = sigma_g * eps_{k,t}``; symbol ``i`` sits in sector ``i mod n_sectors``
  with loading 1 (``n_sectors = 0`` turns them off).
* Idiosyncratic GARCH(1,1): ``e_{i,t} = sqrt(h_{i,t}) z_{i,t}`` with
  ``h_{i,t} = omega_i + alpha e_{i,t-1}^2 + beta h_{i,t-1}``, ``h_{i,0} = omega_i / (1 - alpha - beta)``.
* Alpha (short-term reversal, off unless configured): ``m_{i,t} = -phi e_{i,t-1}``, a mean known at
  ``t-1`` that a direction model can learn from past returns; ``phi = 0`` gives a martingale.
* Return ``r_{i,t} = m_{i,t} + b_i f_t + g_{k(i),t} + e_{i,t}``, true conditional variance
  ``v_{i,t} = b_i^2 sigma_f[s_t]^2 + sigma_g^2 + h_{i,t}``; ``close = P0_i exp(cumsum r)``.
* Open/high/low: ``r`` splits into an overnight gap ``u`` and an intraday move ``x = r - u`` as a
  Brownian path would, ``u | r ~ N(rho r, rho (1 - rho) v)`` (``rho`` = overnight variance share);
  high/low are the exact max/min of a Brownian bridge from open to close with variance
  ``(1 - rho) v``, so ``low <= min(open, close) <= max(open, close) <= high`` by construction.
* Volume: ``ADV_i exp(k (|r|/sqrt(v) - sqrt(2/pi)) + s xi - s^2/2)`` in whole shares.
* Quote: ``spread_bps = base (ADV_i/ADV_med)^-a (sqrt(v)/vbar_i)^b (V/ADV_i)^-c exp(noise)``,
  clipped; ``bid/ask = close (1 -/+ spread/2)`` (close is the mid).
* Fill cost of ``Q`` shares: ``cost_bps = spread_bps/2 + eta sqrt(v) (Q/ADV)^delta 1e4``; a realised
  cost adds ``N(0, (noise_scale sqrt(v) sqrt(Q/ADV) 1e4)^2)``. ``delta`` defaults to 0.6, so a
  square-root-law fit is misspecified on purpose.

``eps``/``z`` are standard normal or unit-variance Student-t. Every component draws from its own
child of ``SeedSequence(seed)``, and the whole configured history is generated at once, so output
is bit-identical per config (for a given numpy) and never depends on the window fetched.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from mem_pipeline.core.config import ParamsConfig, to_plain
from mem_pipeline.core.errors import SourceError
from mem_pipeline.core.schemas import conform_bars

FloatArray = NDArray[np.float64]
_KEY = "sources.synthetic"
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# Child seed streams, one per model component (order fixed: appending is safe, reordering is not).
_STREAMS = ("regimes", "factor", "sectors", "symbols", "idio", "gap", "range", "volume", "spread")
_FILLS_STREAM = 0xF111


def _fail(key: str, detail: str) -> None:
    raise SourceError(f"{_KEY}.{key}: {detail}")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegimeParams:
    """Markov regimes of the market factor; index 0 is the calmest (lowest ``factor_vol``)."""

    transition: tuple[tuple[float, ...], ...] = ((0.985, 0.015), (0.04, 0.96))
    factor_mean: tuple[float, ...] = (0.0005, -0.0008)
    factor_vol: tuple[float, ...] = (0.008, 0.02)

    def __post_init__(self) -> None:
        n = len(self.factor_vol)
        matrix = np.asarray(self.transition, dtype=float)
        if matrix.shape != (n, n):
            _fail("regimes.transition", f"must be {n}x{n} to match factor_vol, got {matrix.shape}")
        if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-9, rtol=0):
            _fail("regimes.transition", "rows must be non-negative and sum to 1")
        if len(self.factor_mean) != n:
            _fail("regimes.factor_mean", f"needs {n} entries, got {len(self.factor_mean)}")
        vols = np.asarray(self.factor_vol)
        if (vols <= 0).any() or (np.diff(vols) <= 0).any():
            _fail("regimes.factor_vol", "must be positive and strictly increasing (regime 0 = calm)")

    @property
    def n(self) -> int:
        return len(self.factor_vol)

    def stationary(self) -> FloatArray:
        """The chain's stationary distribution ``pi = pi P`` (unique for an irreducible chain)."""
        matrix = np.asarray(self.transition, dtype=float)
        system = np.vstack([matrix.T - np.eye(self.n), np.ones(self.n)])
        target = np.zeros(self.n + 1)
        target[-1] = 1.0
        pi = np.linalg.lstsq(system, target, rcond=None)[0]
        return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()

    def factor_variance(self) -> float:
        """Unconditional variance of ``f_t``: ``E[sigma_f^2] + Var(mu)`` under the stationary law."""
        pi = self.stationary()
        mu, vol = np.asarray(self.factor_mean), np.asarray(self.factor_vol)
        mean = pi @ mu
        return float(pi @ vol**2 + pi @ (mu - mean) ** 2)


@dataclass(frozen=True)
class BetaParams:
    """Market betas ~ Normal(mean, sd) clipped to [low, high]."""

    mean: float = 1.0
    sd: float = 0.3
    low: float = 0.2
    high: float = 2.0

    def __post_init__(self) -> None:
        if self.sd < 0 or self.low > self.high:
            _fail("betas", "needs sd >= 0 and low <= high")


@dataclass(frozen=True)
class SectorParams:
    """Sector factors: ``n_sectors`` independent factors of daily vol ``vol``, loading 1."""

    n_sectors: int = 10
    vol: float = 0.005

    def __post_init__(self) -> None:
        if self.n_sectors < 0 or self.vol < 0:
            _fail("sectors", "n_sectors and vol must be >= 0")


@dataclass(frozen=True)
class GarchParams:
    """Idiosyncratic GARCH(1,1); ``omega_i = idio_vol_i^2 (1 - alpha - beta)``.

    ``idio_vol`` is the median unconditional daily vol across symbols, ``vol_dispersion`` the
    log-normal spread of the per-symbol values (0: every symbol identical).
    """

    idio_vol: float = 0.015
    vol_dispersion: float = 0.3
    alpha: float = 0.07
    beta: float = 0.91

    def __post_init__(self) -> None:
        if self.idio_vol <= 0 or self.vol_dispersion < 0:
            _fail("garch", "needs idio_vol > 0 and vol_dispersion >= 0")
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta >= 1:
            _fail(
                "garch",
                f"needs alpha, beta >= 0 and alpha + beta < 1 (got {self.alpha} + {self.beta})",
            )

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta


@dataclass(frozen=True)
class ShockParams:
    """Innovation law of every factor and residual: unit-variance ``normal`` or ``student_t``."""

    distribution: Literal["normal", "student_t"] = "student_t"
    df: float = 6.0

    def __post_init__(self) -> None:
        if self.distribution not in ("normal", "student_t"):
            _fail("shocks.distribution", f"must be normal or student_t, got {self.distribution!r}")
        if self.distribution == "student_t" and self.df <= 2:
            _fail("shocks.df", f"must be > 2 for a finite variance, got {self.df}")

    @property
    def kurtosis(self) -> float:
        """``E[z^4]`` of the unit-variance shock (infinite for Student-t with df <= 4)."""
        if self.distribution == "normal":
            return 3.0
        return math.inf if self.df <= 4 else 3.0 + 6.0 / (self.df - 4.0)


@dataclass(frozen=True)
class PriceParams:
    """Initial prices log-uniform on [initial_min, initial_max]; overnight share of daily variance."""

    initial_min: float = 10.0
    initial_max: float = 300.0
    overnight_share: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial_min <= self.initial_max:
            _fail("prices", "needs 0 < initial_min <= initial_max")
        if not 0 <= self.overnight_share < 1:
            _fail("prices.overnight_share", "must be in [0, 1)")


@dataclass(frozen=True)
class VolumeParams:
    """Daily volume log-normal around a per-symbol ADV (shares), rising with |return| / vol."""

    adv_median: float = 1_000_000.0
    adv_dispersion: float = 1.0
    abs_return_elasticity: float = 0.4
    noise_sd: float = 0.3

    def __post_init__(self) -> None:
        if self.adv_median <= 0 or self.adv_dispersion < 0 or self.noise_sd < 0:
            _fail("volume", "needs adv_median > 0, adv_dispersion >= 0 and noise_sd >= 0")


@dataclass(frozen=True)
class SpreadParams:
    """Quoted spread in bps of the mid, wider for thin names, high vol and low volume."""

    base_bps: float = 8.0
    adv_elasticity: float = 0.3
    vol_elasticity: float = 1.0
    volume_elasticity: float = 0.3
    noise_sd: float = 0.2
    min_bps: float = 0.5
    max_bps: float = 200.0

    def __post_init__(self) -> None:
        if self.base_bps <= 0 or not 0 < self.min_bps <= self.max_bps or self.noise_sd < 0:
            _fail("spread", "needs base_bps > 0, 0 < min_bps <= max_bps and noise_sd >= 0")


@dataclass(frozen=True)
class ImpactParams:
    """``cost_bps = spread/2 + eta sigma (Q/ADV)^delta 1e4``, noise sd ``noise_scale sigma sqrt(Q/ADV) 1e4``."""

    eta: float = 0.5
    delta: float = 0.6
    noise_scale: float = 0.3

    def __post_init__(self) -> None:
        if self.eta < 0 or self.delta <= 0 or self.noise_scale < 0:
            _fail("impact", "needs eta >= 0, delta > 0 and noise_scale >= 0")


@dataclass(frozen=True)
class AlphaParams:
    """Known predictability: the idiosyncratic return reverts ``reversal`` of yesterday's shock."""

    reversal: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.reversal < 1.0:
            _fail("alpha", f"needs 0 <= reversal < 1, got {self.reversal}")


@dataclass(frozen=True)
class SyntheticConfig(ParamsConfig):
    """Everything that determines a synthetic market (hashable: it keys the in-process cache)."""

    SECTION: ClassVar[str] = _KEY
    ERROR: ClassVar[type[Exception]] = SourceError

    seed: int = 7
    n_symbols: int = 50
    start: dt.date = dt.date(2012, 1, 2)
    end: dt.date = dt.date(2018, 12, 31)
    n_regimes: int = 2
    regimes: RegimeParams = field(default_factory=RegimeParams)
    betas: BetaParams = field(default_factory=BetaParams)
    sectors: SectorParams = field(default_factory=SectorParams)
    garch: GarchParams = field(default_factory=GarchParams)
    shocks: ShockParams = field(default_factory=ShockParams)
    prices: PriceParams = field(default_factory=PriceParams)
    volume: VolumeParams = field(default_factory=VolumeParams)
    spread: SpreadParams = field(default_factory=SpreadParams)
    impact: ImpactParams = field(default_factory=ImpactParams)
    alpha: AlphaParams = field(default_factory=AlphaParams)

    def __post_init__(self) -> None:
        if self.n_symbols < 1:
            _fail("n_symbols", f"must be >= 1, got {self.n_symbols}")
        if self.n_regimes != self.regimes.n:
            _fail(
                "n_regimes",
                f"is {self.n_regimes} but regimes.factor_vol has {self.regimes.n} entries",
            )
        if not np.is_busday(np.arange(self.start, self.end + dt.timedelta(days=1), dtype="datetime64[D]")).any():
            _fail("start", f"no business day between {self.start} and {self.end}")

    def digest(self) -> str:
        """Short content hash of the config, for provenance URIs."""
        text = json.dumps(self.to_params(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> SyntheticConfig:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------
# The generated market
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticMarket:
    """A whole generated history plus its ground truth. Arrays are ``(T,)``, ``(N,)`` or ``(T, N)``
    (time-major) and read-only, because a cached market is shared by every fetch."""

    config: SyntheticConfig
    dates: NDArray[np.datetime64]
    symbols: tuple[str, ...]
    regime: NDArray[np.int8]
    factor_return: FloatArray
    sector_return: FloatArray  # (T, n_sectors)
    beta: FloatArray
    sector: NDArray[np.int64]  # -1 when there are no sectors
    omega: FloatArray
    adv: FloatArray
    initial_price: FloatArray
    idio_var: FloatArray  # true conditional variance h_{i,t}
    alpha_mean: FloatArray  # true conditional mean m_{i,t} of the idiosyncratic return (known at t-1)
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    spread_bps: FloatArray

    @property
    def n_days(self) -> int:
        return len(self.dates)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def source_file(self) -> str:
        return f"synthetic://seed={self.config.seed}?config={self.config.digest()}"

    @property
    def unconditional_idio_var(self) -> FloatArray:
        return self.omega / (1.0 - self.config.garch.persistence)

    @property
    def factor_var(self) -> FloatArray:
        """True conditional variance of the market factor, ``sigma_f[s_t]^2``, shape ``(T,)``."""
        return np.asarray(self.config.regimes.factor_vol)[self.regime] ** 2

    @property
    def total_var(self) -> FloatArray:
        """True conditional variance of the total return ``v_{i,t}``, shape ``(T, N)``."""
        common = self.factor_var[:, None] * self.beta[None, :] ** 2
        return common + self._sector_var + self.idio_var

    @property
    def _sector_var(self) -> float:
        return self.config.sectors.vol**2 if self.config.sectors.n_sectors else 0.0

    def date_range(self) -> tuple[dt.date, dt.date]:
        return self.dates[0].item(), self.dates[-1].item()

    def window(self, start: dt.date | None = None, end: dt.date | None = None) -> slice:
        """Time-index slice of the days with ``start <= date <= end`` (None: unbounded)."""
        t0 = 0 if start is None else int(np.searchsorted(self.dates, np.datetime64(start, "D"), "left"))
        t1 = self.n_days if end is None else int(np.searchsorted(self.dates, np.datetime64(end, "D"), "right"))
        return slice(t0, max(t0, t1))

    def bars(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """Canonical bars of a window, ordered by (date, symbol); ``source_row`` is ``t * N + i + 1``."""
        days = self.window(start, end)
        n = self.n_symbols
        n_days = days.stop - days.start
        half = self.spread_bps[days].ravel() * 0.5e-4
        close = self.close[days].ravel()
        frame = pl.DataFrame(
            {
                "date": _date_series(np.repeat(self.dates[days], n)),
                "symbol": _symbol_series(self.symbols, n_days),
                "open": self.open[days].ravel(),
                "high": self.high[days].ravel(),
                "low": self.low[days].ravel(),
                "close": close,
                "volume": self.volume[days].ravel(),
                "bid": close * (1.0 - half),
                "ask": close * (1.0 + half),
                "source_row": np.arange(days.start * n + 1, days.stop * n + 1, dtype=np.int64),
            }
        ).with_columns(pl.lit(self.source_file).alias("source_file"))
        return conform_bars(frame)

    def log_returns(self) -> pl.DataFrame:
        """Daily close-to-close log returns, long (symbol, trade_date, ret_1d); null on the first day."""
        log_close = np.log(self.close)
        ret = np.vstack([np.full((1, self.n_symbols), np.nan), np.diff(log_close, axis=0)])
        n_days, n = ret.shape
        return pl.DataFrame(
            {
                "symbol": np.tile(np.asarray(self.symbols), n_days),
                "trade_date": np.repeat(self.dates.astype("datetime64[D]"), n),
                "ret_1d": ret.ravel(),
            }
        ).with_columns(pl.col("trade_date").cast(pl.Date()), pl.col("ret_1d").fill_nan(None))

    def truth_tables(self) -> SyntheticTruth:
        """The ground-truth tables (what ``write_truth`` saves)."""
        return SyntheticTruth(
            config=self.config,
            impact=self.config.impact,
            regimes=self._regimes_frame(),
            symbols=self._symbols_frame(),
            sector_returns=self._sector_returns_frame(),
            conditional_variance=self._variance_frame(),
        )

    def _regimes_frame(self) -> pl.DataFrame:
        regimes = self.config.regimes
        return pl.DataFrame(
            {
                "date": _date_series(self.dates),
                "regime": self.regime.astype(np.int32),
                "factor_mean": np.asarray(regimes.factor_mean)[self.regime],
                "factor_vol": np.asarray(regimes.factor_vol)[self.regime],
                "factor_return": self.factor_return,
            }
        )

    def _symbols_frame(self) -> pl.DataFrame:
        garch = self.config.garch
        return pl.DataFrame(
            {
                "symbol": list(self.symbols),
                "beta": self.beta,
                "sector": self.sector.astype(np.int32),
                "omega": self.omega,
                "garch_alpha": np.full(self.n_symbols, garch.alpha),
                "garch_beta": np.full(self.n_symbols, garch.beta),
                "idio_unconditional_var": self.unconditional_idio_var,
                "adv": self.adv,
                "initial_price": self.initial_price,
            }
        )

    def _sector_returns_frame(self) -> pl.DataFrame:
        k = self.sector_return.shape[1]
        return pl.DataFrame(
            {
                "date": _date_series(np.repeat(self.dates, k)),
                "sector": np.tile(np.arange(k, dtype=np.int32), self.n_days),
                "sector_return": self.sector_return.ravel(),
            }
        )

    def _variance_frame(self) -> pl.DataFrame:
        n = self.n_symbols
        return pl.DataFrame(
            {
                "date": _date_series(np.repeat(self.dates, n)),
                "symbol": _symbol_series(self.symbols, self.n_days),
                "idio_var": self.idio_var.ravel(),
                "total_var": self.total_var.ravel(),
                "alpha_mean": self.alpha_mean.ravel(),
                "beta": np.tile(self.beta, self.n_days),
            }
        )


def _date_series(days: NDArray[np.datetime64]) -> pl.Series:
    return pl.Series(days.astype("datetime64[D]").astype(np.int32)).cast(pl.Date())


def _symbol_series(symbols: tuple[str, ...], n_days: int) -> pl.Series:
    index = np.tile(np.arange(len(symbols), dtype=np.uint32), n_days)
    return pl.Series("symbol", list(symbols), dtype=pl.String()).gather(index)


def symbol_names(n: int) -> tuple[str, ...]:
    """``SYN000``, ``SYN001``, ... (wider once n exceeds 1000)."""
    width = max(3, len(str(n - 1)))
    return tuple(f"SYN{i:0{width}d}" for i in range(n))


def business_days(start: dt.date, end: dt.date) -> NDArray[np.datetime64]:
    days = np.arange(start, end + dt.timedelta(days=1), dtype="datetime64[D]")
    return days[np.is_busday(days)]


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def generate_market(config: SyntheticConfig) -> SyntheticMarket:
    """Generate the whole configured history (pure and deterministic; see the module docstring)."""
    rngs = _streams(config.seed)
    dates = business_days(config.start, config.end)
    n_days, n = len(dates), config.n_symbols

    regime = simulate_regimes(config.regimes, n_days, rngs["regimes"])
    mu, vol = np.asarray(config.regimes.factor_mean), np.asarray(config.regimes.factor_vol)
    factor = mu[regime] + vol[regime] * draw_shocks(rngs["factor"], n_days, config.shocks)

    beta, sector, idio_vol, adv, price0 = _symbol_params(config, rngs["symbols"])
    n_sectors = config.sectors.n_sectors
    sector_return = config.sectors.vol * draw_shocks(rngs["sectors"], (n_days, n_sectors), config.shocks)

    omega = idio_vol**2 * (1.0 - config.garch.persistence)
    z = draw_shocks(rngs["idio"], (n_days, n), config.shocks)
    idio_var = garch_variance(z, omega, config.garch.alpha, config.garch.beta)

    idio = np.sqrt(idio_var) * z
    alpha_mean = np.zeros_like(idio)
    alpha_mean[1:] = -config.alpha.reversal * idio[:-1]
    log_return = factor[:, None] * beta[None, :] + idio
    if config.alpha.reversal:
        log_return += alpha_mean
    del idio
    if n_sectors:
        log_return += sector_return[:, sector]
    sector_var = config.sectors.vol**2 if n_sectors else 0.0
    total_var = (vol[regime] ** 2)[:, None] * beta[None, :] ** 2 + sector_var + idio_var
    del z

    log_close = np.log(price0)[None, :] + np.cumsum(log_return, axis=0)
    log_open, log_high, log_low = _intraday(log_close, log_return, total_var, price0, config.prices, rngs)
    sigma = np.sqrt(total_var)
    volume = _volume(log_return, sigma, adv, config.volume, rngs["volume"])
    unconditional_sigma = np.sqrt(beta**2 * config.regimes.factor_variance() + sector_var + idio_vol**2)
    spread = _spread(sigma, unconditional_sigma, volume, adv, config, rngs["spread"])

    market = SyntheticMarket(
        config=config,
        dates=dates,
        symbols=symbol_names(n),
        regime=regime,
        factor_return=factor,
        sector_return=sector_return,
        beta=beta,
        sector=sector,
        omega=omega,
        adv=adv,
        initial_price=price0,
        idio_var=idio_var,
        alpha_mean=alpha_mean,
        open=np.exp(log_open),
        high=np.exp(log_high),
        low=np.exp(log_low),
        close=np.exp(log_close),
        volume=volume,
        spread_bps=spread,
    )
    for f in fields(market):
        value = getattr(market, f.name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return market


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per model component, all children of ``SeedSequence(seed)``."""
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


@functools.lru_cache(maxsize=2)
def cached_market(config: SyntheticConfig) -> SyntheticMarket:
    """``generate_market`` memoised per config (an 800 x 3,500 market holds ~160 MB)."""
    return generate_market(config)


def simulate_regimes(regimes: RegimeParams, n_days: int, rng: np.random.Generator) -> NDArray[np.int8]:
    """A Markov-chain path started from the stationary distribution (one uniform per day)."""
    uniforms = rng.random(n_days).tolist()
    cumulative = [np.cumsum(row).tolist() for row in regimes.transition]
    start = np.cumsum(regimes.stationary()).tolist()
    last = regimes.n - 1
    path = np.empty(n_days, dtype=np.int8)
    state = 0
    for t, u in enumerate(uniforms):
        row = start if t == 0 else cumulative[state]
        state = min(bisect.bisect_right(row, u), last)  # min: guards a row summing to 1 - 1e-16
        path[t] = state
    return path


def draw_shocks(rng: np.random.Generator, size: int | tuple[int, ...], shocks: ShockParams) -> FloatArray:
    """Unit-variance innovations: standard normal, or Student-t scaled by ``sqrt((df - 2) / df)``."""
    if shocks.distribution == "normal":
        return rng.standard_normal(size)
    return rng.standard_t(shocks.df, size) * math.sqrt((shocks.df - 2.0) / shocks.df)


def garch_variance(z: FloatArray, omega: FloatArray, alpha: float, beta: float) -> FloatArray:
    """``h_t`` of GARCH(1,1) driven by standardised shocks ``z`` (T, N), started unconditional.

    With ``e = sqrt(h) z`` the recursion is ``h_{t+1} = omega + h_t (alpha z_t^2 + beta)``: the
    growth factor is vectorised up front, leaving two vector ops per time step.
    """
    n_days = z.shape[0]
    h = np.empty_like(z)
    h[0] = omega / (1.0 - alpha - beta)
    growth = alpha * z * z + beta
    for t in range(n_days - 1):
        np.multiply(h[t], growth[t], out=h[t + 1])
        h[t + 1] += omega
    return h


def _symbol_params(
    config: SyntheticConfig, rng: np.random.Generator
) -> tuple[FloatArray, NDArray[np.int64], FloatArray, FloatArray, FloatArray]:
    n = config.n_symbols
    b = config.betas
    beta = np.clip(b.mean + b.sd * rng.standard_normal(n), b.low, b.high)
    k = config.sectors.n_sectors
    sector = np.arange(n) % k if k else np.full(n, -1)
    idio_vol = config.garch.idio_vol * np.exp(config.garch.vol_dispersion * rng.standard_normal(n))
    adv = config.volume.adv_median * np.exp(config.volume.adv_dispersion * rng.standard_normal(n))
    p = config.prices
    price0 = np.exp(rng.uniform(math.log(p.initial_min), math.log(p.initial_max), n))
    return beta, sector, idio_vol, adv, price0


def _intraday(
    log_close: FloatArray,
    log_return: FloatArray,
    total_var: FloatArray,
    price0: FloatArray,
    prices: PriceParams,
    rngs: dict[str, np.random.Generator],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log open/high/low: Brownian split of ``r`` into gap + intraday move, bridge max/min."""
    rho = prices.overnight_share
    prev_close = np.vstack([np.log(price0)[None, :], log_close[:-1]])
    gap = rho * log_return + math.sqrt(rho * (1.0 - rho)) * np.sqrt(total_var) * rngs["gap"].standard_normal(
        log_return.shape
    )
    log_open = prev_close + gap
    move = log_close - log_open
    move_sq = move * move
    two_var = 2.0 * (1.0 - rho) * total_var
    up = 0.5 * (move + np.sqrt(move_sq + two_var * rngs["range"].standard_exponential(move.shape)))
    down = 0.5 * (move - np.sqrt(move_sq + two_var * rngs["range"].standard_exponential(move.shape)))
    # The bridge max is >= max(0, move) analytically; the max/min below make it exact in floats.
    log_high = np.maximum(np.maximum(log_open + up, log_open), log_close)
    log_low = np.minimum(np.minimum(log_open + down, log_open), log_close)
    return log_open, log_high, log_low


def _volume(
    log_return: FloatArray,
    sigma: FloatArray,
    adv: FloatArray,
    params: VolumeParams,
    rng: np.random.Generator,
) -> FloatArray:
    surprise = np.abs(log_return) / sigma - _SQRT_2_OVER_PI
    noise = params.noise_sd * rng.standard_normal(log_return.shape) - 0.5 * params.noise_sd**2
    volume = adv[None, :] * np.exp(params.abs_return_elasticity * surprise + noise)
    return np.maximum(np.rint(volume), 1.0)


def _spread(
    sigma: FloatArray,
    unconditional_sigma: FloatArray,
    volume: FloatArray,
    adv: FloatArray,
    config: SyntheticConfig,
    rng: np.random.Generator,
) -> FloatArray:
    p = config.spread
    level = p.base_bps * (adv / config.volume.adv_median) ** -p.adv_elasticity
    noise = np.exp(p.noise_sd * rng.standard_normal(sigma.shape) - 0.5 * p.noise_sd**2)
    spread = level[None, :] * (sigma / unconditional_sigma[None, :]) ** p.vol_elasticity
    spread *= (volume / adv[None, :]) ** -p.volume_elasticity
    spread *= noise
    return np.clip(spread, p.min_bps, p.max_bps)


# --------------------------------------------------------------------------------------------
# Market impact and simulated fills
# --------------------------------------------------------------------------------------------


def impact_cost_bps(
    size_over_adv: float | NDArray[np.float64],
    sigma: float | NDArray[np.float64],
    spread_bps: float | NDArray[np.float64],
    params: ImpactParams,
    rng: np.random.Generator | None = None,
) -> FloatArray:
    """True expected cost ``spread/2 + eta sigma (Q/ADV)^delta 1e4`` in bps (``sigma`` = daily vol).

    With ``rng`` the result is one realised cost: plus ``N(0, (noise_scale sigma sqrt(Q/ADV) 1e4)^2)``,
    price risk over an execution lasting in proportion to the order's share of a day's volume.
    Broadcasts; returns a 0-d array for scalar inputs (``float()`` it if needed).
    """
    size = np.asarray(size_over_adv, dtype=float)
    vol = np.asarray(sigma, dtype=float)
    if (size < 0).any() or (vol < 0).any():
        raise ValueError("size_over_adv and sigma must be >= 0")
    cost = 0.5 * np.asarray(spread_bps, dtype=float) + params.eta * vol * size**params.delta * 1e4
    if rng is not None:
        noise_sd = params.noise_scale * vol * np.sqrt(size) * 1e4
        cost = cost + noise_sd * rng.standard_normal(np.shape(cost))
    return cost


def simulate_fills(
    market: SyntheticMarket,
    n_fills: int,
    seed: int | None = None,
    size_over_adv_range: tuple[float, float] = (1e-4, 0.1),
) -> pl.DataFrame:
    """Fills at random (date, symbol) with log-uniform sizes, priced by the true impact model.

    ``seed`` None derives a stream from the market's seed (independent of the bar streams).
    ``sigma`` is the true conditional daily vol of the total return that day; ``participation``
    is ``qty / volume`` of that day; costs are in bps, positive = paid, for buys and sells alike.
    """
    rng = np.random.default_rng([market.config.seed, _FILLS_STREAM] if seed is None else seed)
    t = rng.integers(0, market.n_days, n_fills)
    i = rng.integers(0, market.n_symbols, n_fills)
    low, high = size_over_adv_range
    target = np.exp(rng.uniform(math.log(low), math.log(high), n_fills))
    side = np.where(rng.random(n_fills) < 0.5, "buy", "sell")
    qty = np.maximum(np.rint(target * market.adv[i]), 1.0)
    size = qty / market.adv[i]
    sigma = np.sqrt(market.factor_var[t] * market.beta[i] ** 2 + market._sector_var + market.idio_var[t, i])
    spread = market.spread_bps[t, i]
    true_cost = impact_cost_bps(size, sigma, spread, market.config.impact)
    realized = impact_cost_bps(size, sigma, spread, market.config.impact, rng=rng)
    order = np.lexsort((i, t))
    return pl.DataFrame(
        {
            "symbol": pl.Series(list(market.symbols)).gather(i[order]),
            "date": _date_series(market.dates[t[order]]),
            "side": side[order],
            "qty": qty[order],
            "adv": market.adv[i[order]],
            "size_over_adv": size[order],
            "participation": (qty / market.volume[t, i])[order],
            "spread_bps": spread[order],
            "sigma": sigma[order],
            "true_cost_bps": true_cost[order],
            "realized_cost_bps": realized[order],
        }
    )


# --------------------------------------------------------------------------------------------
# Ground truth on disk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """Ground-truth tables of a synthetic market, in memory or loaded from ``write_truth`` files."""

    config: SyntheticConfig
    impact: ImpactParams
    regimes: pl.DataFrame  # date, regime, factor_mean, factor_vol, factor_return
    symbols: pl.DataFrame  # symbol, beta, sector, omega, garch_alpha, garch_beta, ...
    sector_returns: pl.DataFrame  # date, sector, sector_return
    conditional_variance: pl.DataFrame  # date, symbol, idio_var, total_var, beta


_TABLES = ("regimes", "symbols", "sector_returns", "conditional_variance")


def write_truth(market: SyntheticMarket, directory: Path) -> list[Path]:
    """Save the ground truth: one parquet per table, ``impact_params.json`` and ``params.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    truth = market.truth_tables()
    written = []
    for name in _TABLES:
        path = directory / f"{name}.parquet"
        getattr(truth, name).write_parquet(path)
        written.append(path)
    impact = {"formula": ImpactParams.__doc__, **to_plain(truth.impact)}
    for name, payload in (("impact_params", impact), ("params", truth.config.to_params())):
        path = directory / f"{name}.json"
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def load_truth(directory: Path) -> SyntheticTruth:
    directory = Path(directory)
    config = SyntheticConfig.from_params(json.loads((directory / "params.json").read_text(encoding="utf-8")))
    impact_raw = json.loads((directory / "impact_params.json").read_text(encoding="utf-8"))
    impact = ImpactParams(**{f.name: float(impact_raw[f.name]) for f in fields(ImpactParams)})
    tables = {name: pl.read_parquet(directory / f"{name}.parquet") for name in _TABLES}
    return SyntheticTruth(config=config, impact=impact, **tables)


# --------------------------------------------------------------------------------------------
# The source adapter
# --------------------------------------------------------------------------------------------


class SyntheticSource:
    """``MarketDataSource`` over a generated market; the history is generated once per config."""

    name = "synthetic"

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config if config is not None else SyntheticConfig.from_params_file()

    def fetch(self, start: dt.date, end: dt.date) -> pl.DataFrame:
        return self.truth().bars(start, end)

    def date_range(self) -> tuple[dt.date, dt.date]:
        return self.truth().date_range()

    def truth(self) -> SyntheticMarket:
        """The full in-memory market with its ground truth (shared, read-only arrays)."""
        return cached_market(self.config)

    def write_truth(self, directory: Path) -> list[Path]:
        """Save the ground truth beside the bars (``TruthfulSource``); used to score models against an oracle."""
        return write_truth(self.truth(), directory)
