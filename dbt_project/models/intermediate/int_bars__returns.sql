{#-
    One row per symbol per trading day: the bar's one-day changes and spreads, which need the previous bar.
    Only what the marts and models read is kept (the bar's lineage stays in stg_market__bars): this table is
    written in full on a cold build, and every column costs write time.

    Incremental by date window (see macros/incremental_window.sql): the window's bars come from the lake and
    each symbol's last row before it from this table, so `obs` continues the symbol's count.
-#}
{%- set start = window_start() -%}
{%- set end = window_end() -%}

with

bars as (

    select trade_date, symbol, open, high, low, close, volume, bid, ask, true as in_window
    from {{ ref('stg_market__bars') }}
    where true
    {%- if start %}
        and {{ rebuilt(start) }}
    {%- endif %}
    {%- if end %}
        and trade_date <= cast('{{ end }}' as date)
    {%- endif %}

),

{% if start -%}
-- each symbol's last row before the window, as stored here
previous as (

    select trade_date, symbol, high, low, close, obs, false as in_window
    from {{ this }}
    where trade_date < cast('{{ start }}' as date)
    qualify row_number() over (partition by symbol order by trade_date desc) = 1

),

series as (

    select * from bars
    union all by name
    select * from previous

),
{%- else -%}
series as (

    select * from bars

),
{%- endif %}

lagged as (

    select
        *,
        lag(close) over by_symbol as prev_close,
        lag(high) over by_symbol as prev_high,
        lag(low) over by_symbol as prev_low,
        {%- if start %}
        -- the symbol's count goes on from its previous row, if it has one
        coalesce(first_value(obs) over by_symbol - 1, 0) + row_number() over by_symbol as position,
        {%- else %}
        row_number() over by_symbol as position,
        {%- endif %}

    from series
    window by_symbol as (partition by symbol order by trade_date rows between unbounded preceding and current row)

),

computed as (

    select
        trade_date,
        symbol,
        position as obs,
        high,
        low,
        close,
        volume,
        ln(close / prev_close) as ret_1d,
        close - prev_close as price_change,
        ln(high / low) as log_range,
        ln(close / open) as log_body,
        case when bid > 0 and ask >= bid then (ask - bid) / ((ask + bid) / 2) end as quoted_spread,
        -- Corwin & Schultz (2012) two-day high-low spread estimator (without the overnight adjustment)
        pow(ln(high / low), 2) + pow(ln(prev_high / prev_low), 2) as cs_beta,
        pow(ln(greatest(high, prev_high) / least(low, prev_low)), 2) as cs_gamma,

    from lagged
    where in_window

),

final as (

    select
        * exclude (cs_beta, cs_gamma),
        (sqrt(2 * cs_beta) - sqrt(cs_beta)) / (3 - 2 * sqrt(2)) - sqrt(cs_gamma / (3 - 2 * sqrt(2))) as cs_alpha,

    from computed

)

select
    * exclude (cs_alpha),
    -- negative estimates set to zero as in the paper
    {{ floor_at_zero('2 * (exp(cs_alpha) - 1) / (1 + exp(cs_alpha))') }} as cs_spread,
from final
