-- One row per trading day: the equal-weighted market of every symbol with a return that day.
with

returns as (

    select * from {{ ref('int_bars__returns') }}

),

daily as (

    select
        trade_date,
        -- Summed as an exact decimal: a parallel hash aggregate adds doubles in a varying order, and the
        -- last bit of the market return (and of every beta) would change from run to run.
        ln(1 + cast(avg(cast(exp(ret_1d) - 1 as decimal(38, 18))) as double)) as mkt_ret_1d,
        count(ret_1d) as n_symbols,

    from returns
    where ret_1d is not null
    group by trade_date

),

final as (

    select
        *,
        case
            when count(mkt_ret_1d) over last_5 = 5 then sum(mkt_ret_1d) over last_5
        end as mkt_ret_5d,

    from daily
    window last_5 as (order by trade_date rows between 4 preceding and current row)

)

select * from final
