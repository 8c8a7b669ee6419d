{#-
    fct_features_daily as DuckDB SQL window functions: the mart's form until the Python model replaced it,
    kept as an analysis (compiled, never built) for `bench/bench_features.py` to race against the Python model
    and pandas. Full build only.
-#}
with

history as (

    select * from {{ ref('int_bars__returns') }}

),

market as (

    select * from {{ ref('int_market__daily') }}

),

joined as (

    select
        history.symbol,
        history.trade_date,
        history.obs,
        history.close,
        history.volume,
        history.ret_1d,
        history.log_range,
        history.quoted_spread,
        history.cs_spread,
        market.mkt_ret_1d,
        market.mkt_ret_5d,
        history.close * history.volume as dollar_volume,
        abs(history.ret_1d) / nullif(history.close * history.volume, 0) * 1e6 as illiquidity,
        abs(history.price_change) as abs_change,
        0.5 * pow(history.log_range, 2) - (2 * ln(2) - 1) * pow(history.log_body, 2) as gk_term,

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

        -- RSI(14) inputs: the net and the total absolute change over the last 14 changes
        close - lag(close, 14) over by_symbol as net_change_14,
        {{ rolling_dense('avg(abs_change)', 14, 2) }} as abs_change_avg_14,

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
        * exclude (net_change_14, abs_change_avg_14, obs),
        -- RSI(14), Cutler's variant (simple averages, so the value is window-bounded): 100 * gains /
        -- (gains + losses) = 50 * (1 + net change / total absolute change), one window aggregate instead of
        -- two; clamped against the last bit. No change at all counts as no loss (100).
        case
            when abs_change_avg_14 = 0 then 100
            when abs_change_avg_14 > 0
                then least(greatest(50 + 50 * net_change_14 / (14 * abs_change_avg_14), 0), 100)
        end as rsi_14,
        {{ rolling_dense('avg(macd)', 9, 26) }} as macd_signal_9,
        coalesce(quoted_spread_20d, cs_spread_20d) as spread_est,

    from windowed

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

    from (select symbol, trade_date, {{ ranked | join(', ') }} from derived)

),

final as (

    select
        derived.*,
        {%- for column in ranked %}
        ranks.rank_{{ column }},
        {%- endfor %}

    from derived
    inner join ranks on derived.symbol = ranks.symbol and derived.trade_date = ranks.trade_date

)

select * from final
