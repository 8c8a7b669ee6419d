-- The lake only holds bars that passed the ingest gate: low <= open, close <= high, prices > 0.
-- A row here means the lake was written around the gate. Reads the days the run rebuilds (see the view's tests).
{%- set start = window_start(reads_this=false) %}
select bar_id, open, high, low, close
from {{ ref('stg_market__bars') }}
where (low > least(open, close)
   or high < greatest(open, close)
   or low <= 0)
{%- if start %}
  and trade_date >= cast('{{ start }}' as date)
{%- endif %}
