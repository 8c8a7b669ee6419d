-- One row per trading day: the equal-weighted market of every symbol with a return that day.
-- Incremental like int_bars__returns: the days it holds from the window's start on are rebuilt (it has
-- just rebuilt them), with the 4 market days before the window, from this table, for the 5-day sum.
{%- set start = window_start() %}

with

returns as (

    select * from {{ ref('int_bars__returns') }}
    {%- if start %}
    where {{ rebuilt(start) }}
    {%- endif %}

),

daily as (

    select
        trade_date,
        -- Summed as an exact decimal: a parallel hash aggregate adds doubles in a varying order, and the
        -- last bit of the market return (and of every beta) would change from run to run.
        ln(1 + cast(avg(cast(exp(ret_1d) - 1 as decimal(38, 18))) as double)) as mkt_ret_1d,
        count(ret_1d) as n_symbols,
        true as in_window,

    from returns
    where ret_1d is not null
    group by trade_date

),

{% if start -%}
series as (

    select * from daily
    union all by name
    select * from (
        select trade_date, mkt_ret_1d, n_symbols, false as in_window
        from {{ this }}
        where trade_date < cast('{{ start }}' as date)
        order by trade_date desc
        limit 4
    )

),
{%- else -%}
series as (

    select * from daily

),
{%- endif %}

final as (

    select
        trade_date,
        mkt_ret_1d,
        n_symbols,
        case
            when count(mkt_ret_1d) over last_5 = 5 then sum(mkt_ret_1d) over last_5
        end as mkt_ret_5d,
        in_window,

    from series
    window last_5 as (order by trade_date rows between 4 preceding and current row)

)

select * exclude (in_window) from final
where in_window
