{{ config(materialized='table') }}

-- Forward returns and direction labels. These read the FUTURE (lead): they exist to train and score
-- models, and nothing on the decision path may read them at time t.
with

returns as (

    select * from {{ ref('int_bars__returns') }}

),

forward as (

    select
        symbol,
        trade_date,
        ln(lead(close, 1) over by_symbol / close) as fwd_ret_1d,
        ln(lead(close, 5) over by_symbol / close) as fwd_ret_5d,
        ln(lead(close, 20) over by_symbol / close) as fwd_ret_20d,

    from returns
    window by_symbol as (partition by symbol order by trade_date rows between current row and unbounded following)

),

final as (

    select
        *,
        case when fwd_ret_1d is not null then cast(fwd_ret_1d > 0 as integer) end as up_1d,
        case when fwd_ret_5d is not null then cast(fwd_ret_5d > 0 as integer) end as up_5d,
        case when fwd_ret_20d is not null then cast(fwd_ret_20d > 0 as integer) end as up_20d,

    from forward

)

select * from final
