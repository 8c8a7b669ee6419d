-- The lake only holds bars that passed the ingest gate: low <= open, close <= high, prices > 0.
-- A row here means the lake was written around the gate.
select bar_id, open, high, low, close
from {{ ref('stg_market__bars') }}
where low > least(open, close)
   or high < greatest(open, close)
   or low <= 0
