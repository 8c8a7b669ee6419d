-- One row per symbol per trading day: the bar with its previous bar's values and one-day changes.
with

bars as (

    select * from {{ ref('stg_market__bars') }}

),

lagged as (

    select
        *,
        lag(close) over by_symbol as prev_close,
        lag(high) over by_symbol as prev_high,
        lag(low) over by_symbol as prev_low,
        row_number() over by_symbol as obs,

    from bars
    window by_symbol as (partition by symbol order by trade_date rows between unbounded preceding and current row)

),

computed as (

    select
        *,
        ln(close / prev_close) as ret_1d,
        close - prev_close as price_change,
        ln(high / low) as log_range,
        ln(close / open) as log_body,
        case when bid > 0 and ask >= bid then (ask - bid) / ((ask + bid) / 2) end as quoted_spread,

    from lagged

),

-- Corwin & Schultz (2012) two-day high-low spread estimator (without the overnight adjustment),
-- negative estimates set to zero as in the paper.
corwin_schultz as (

    select
        *,
        pow(ln(high / low), 2) + pow(ln(prev_high / prev_low), 2) as cs_beta,
        pow(ln(greatest(high, prev_high) / least(low, prev_low)), 2) as cs_gamma,

    from computed

),

final as (

    select
        *,
        (sqrt(2 * cs_beta) - sqrt(cs_beta)) / (3 - 2 * sqrt(2)) - sqrt(cs_gamma / (3 - 2 * sqrt(2))) as cs_alpha,

    from corwin_schultz

)

select
    * exclude (cs_alpha, cs_beta, cs_gamma),
    {{ floor_at_zero('2 * (exp(cs_alpha) - 1) / (1 + exp(cs_alpha))') }} as cs_spread,
from final
