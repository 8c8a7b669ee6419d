{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['symbol', 'trade_date'],
        on_schema_change='fail',
    )
}}

{#-
    Incremental by date window: Dagster passes the partition window as vars `min_date` / `max_date`.
    Windows need history before `min_date`: the longest needs 61 rows, so each symbol's last
    `lookback_rows` rows before the window are read too, and only the window's rows are written.
-#}
{%- set min_date = var('min_date', none) -%}
{%- set max_date = var('max_date', none) -%}
{%- set lookback_rows = var('lookback_rows', 70) -%}

with

returns as (

    select * from {{ ref('int_bars__returns') }}
    {%- if max_date %}
    where trade_date <= cast('{{ max_date }}' as date)
    {%- endif %}

),

{% if min_date -%}
window_start as (

    select symbol, min(obs) - {{ lookback_rows }} as first_obs
    from returns
    where trade_date >= cast('{{ min_date }}' as date)
    group by symbol

),

history as (

    select returns.*
    from returns
    inner join window_start on returns.symbol = window_start.symbol
    where returns.obs >= window_start.first_obs

),
{%- else -%}
history as (

    select * from returns

),
{%- endif %}

market as (

    select * from {{ ref('int_market__daily') }}

),

joined as (

    select
        history.*,
        market.mkt_ret_1d,
        market.mkt_ret_5d,
        close * volume as dollar_volume,
        abs(ret_1d) / nullif(close * volume, 0) * 1e6 as illiquidity,
        {{ floor_at_zero('price_change') }} as gain,
        {{ floor_at_zero('-price_change') }} as loss,
        0.5 * pow(log_range, 2) - (2 * ln(2) - 1) * pow(log_body, 2) as gk_term,

    from history
    left join market on history.trade_date = market.trade_date

),

windowed as (

    select
        symbol,
        trade_date,
        obs,
        close,

        -- returns
        ret_1d,
        ln(close / lag(close, 5) over by_symbol) as ret_5d,
        ln(close / lag(close, 20) over by_symbol) as ret_20d,
        ln(close / lag(close, 60) over by_symbol) as ret_60d,

        -- realized volatility (daily, sample standard deviation of log returns)
        {{ rolling_dense('stddev_samp(ret_1d)', 5, 2) }} as rv_5d,
        {{ rolling_dense('stddev_samp(ret_1d)', 20, 2) }} as rv_20d,
        {{ rolling_dense('stddev_samp(ret_1d)', 60, 2) }} as rv_60d,

        -- range-based volatility (daily)
        sqrt({{ rolling_dense('avg(pow(log_range, 2))', 20) }} / (4 * ln(2))) as parkinson_20d,
        sqrt({{ floor_at_zero(rolling_dense('avg(gk_term)', 20)) }}) as garman_klass_20d,

        -- momentum (skipping the last 5 days) and market-adjusted short-term reversal
        ln(lag(close, 5) over by_symbol / lag(close, 60) over by_symbol) as momentum_60_5,
        -(ln(close / lag(close, 5) over by_symbol) - mkt_ret_5d) as reversal_5d,

        -- RSI(14), Cutler's variant: simple averages of gains and losses, so the value is window-bounded
        {{ rolling_dense('avg(gain)', 14, 2) }} as avg_gain_14,
        {{ rolling_dense('avg(loss)', 14, 2) }} as avg_loss_14,

        -- MACD on simple moving averages (12/26), scaled by price
        ({{ rolling_dense('avg(close)', 12) }} - {{ rolling_dense('avg(close)', 26) }}) / close as macd,

        -- price and volume z-scores against their 20-day means
        (close - {{ rolling_dense('avg(close)', 20) }})
            / nullif({{ rolling_dense('stddev_samp(close)', 20) }}, 0) as price_z_20d,
        (volume - {{ rolling_dense('avg(volume)', 20) }})
            / nullif({{ rolling_dense('stddev_samp(volume)', 20) }}, 0) as volume_z_20d,

        -- liquidity: dollar volume (turnover in currency), Amihud illiquidity, spread
        {{ rolling_dense('avg(dollar_volume)', 20) }} as dollar_volume_20d,
        {{ rolling('avg(illiquidity)', 20, 'illiquidity') }} as amihud_20d,
        {{ rolling('avg(quoted_spread)', 20, 'quoted_spread') }} as quoted_spread_20d,
        {{ rolling_dense('avg(cs_spread)', 20, 2) }} as cs_spread_20d,

        -- market beta and correlation over 60 days
        -- the market has a return on every day a symbol has one, so both exist from the 2nd row
        {{ rolling_dense('regr_slope(ret_1d, mkt_ret_1d)', 60, 2) }} as beta_60d,
        {{ rolling_dense('corr(ret_1d, mkt_ret_1d)', 60, 2) }} as corr_60d,

        -- drawdown from the 60-day high
        close / {{ rolling_dense('max(close)', 60) }} - 1 as drawdown_60d,

    from joined
    window by_symbol as (partition by symbol order by trade_date rows between unbounded preceding and current row)

),

derived as (

    select
        * exclude (avg_gain_14, avg_loss_14, obs),
        case
            when avg_loss_14 = 0 then 100
            else 100 - 100 / (1 + avg_gain_14 / avg_loss_14)
        end as rsi_14,
        {{ rolling_dense('avg(macd)', 9, 26) }} as macd_signal_9,
        coalesce(quoted_spread_20d, cs_spread_20d) as spread_est,

    from windowed

),

in_window as (

    select * from derived
    {%- if min_date %}
    where trade_date >= cast('{{ min_date }}' as date)
    {%- endif %}

),

{%- set ranked = ['ret_20d', 'rv_20d', 'momentum_60_5', 'amihud_20d', 'volume_z_20d'] %}

-- Cross-sectional ranks on a narrow projection: sorting only the key and the ranked columns per date
-- is much cheaper than re-sorting whole feature rows for every rank.
ranks as (

    select
        symbol,
        trade_date,
        {%- for column in ranked %}
        case
            when {{ column }} is not null
                then percent_rank() over (partition by trade_date, {{ column }} is null order by {{ column }})
        end as rank_{{ column }},
        {%- endfor %}

    from (select symbol, trade_date, {{ ranked | join(', ') }} from in_window)

),

final as (

    select
        in_window.*,
        {%- for column in ranked %}
        ranks.rank_{{ column }},
        {%- endfor %}

    from in_window
    inner join ranks on in_window.symbol = ranks.symbol and in_window.trade_date = ranks.trade_date

)

select * from final
