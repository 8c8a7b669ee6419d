with

source as (

    select * from {{ source('market', 'bars') }}

),

renamed as (

    select
        cast(date as date) as trade_date,
        cast(symbol as varchar) as symbol,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume,
        cast(bid as double) as bid,
        cast(ask as double) as ask,
        cast(source_file as varchar) as source_file,
        cast(source_row as bigint) as source_row,
        symbol || '|' || strftime(cast(date as date), '%Y-%m-%d') as bar_id,

    from source

)

select * from renamed
