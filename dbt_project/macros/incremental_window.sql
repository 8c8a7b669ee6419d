{#-
    The date window an incremental run rebuilds: vars `min_date` / `max_date` (by hand: `dbt build --vars ...`),
    else the environment's MEM_DBT_MIN_DATE / MEM_DBT_MAX_DATE (how Dagster passes a run's days: a changed var
    makes dbt re-parse the whole project, about 1 s, while a changed env var re-parses only what reads it);
    without either (a full refresh) every model is built from the whole lake.

    window_start(reads_this): the first day to rebuild. A model that takes the history before the window from
    its own table (`reads_this`) is built from the whole lake while that table does not exist yet.

    window_end(): the last day to rebuild. A window that ends before rows this model already holds is
    extended to them: the bars before those rows may have changed, and their lags and windows read them.
-#}
{% macro window_start(reads_this=true) -%}
    {%- set min_date = var('min_date', env_var('MEM_DBT_MIN_DATE', '')) or none -%}
    {{ return(min_date if (min_date and (is_incremental() or not reads_this)) else none) }}
{%- endmacro %}

{% macro window_end() -%}
    {%- set max_date = var('max_date', env_var('MEM_DBT_MAX_DATE', '')) or none -%}
    {%- if not (max_date and window_start() and execute) -%}
        {{ return(max_date) }}
    {%- endif -%}
    {%- set built = run_query("select cast(max(trade_date) as varchar) from " ~ this).columns[0].values()[0] -%}
    {{ return(built if built and built > max_date else max_date) }}
{%- endmacro %}

{#-
    rebuilt(start): the condition on `trade_date` of the rows a run rebuilds: from `start` on, and from the first
    day after the last one this model holds before `start`, so that days skipped by earlier runs are filled in
    rather than left as a gap that later lags and windows would silently step over. That last day is looked up
    when the model is built and written into the SQL as a date: a plain bound on the date is what DuckDB pushes
    down into the parquet scan (with a subquery in the condition, a one-day run read every file of the lake).
-#}
{% macro rebuilt(start) -%}
    {%- set last = none -%}
    {%- if is_incremental() and execute -%}
        {%- set last = run_query(
            "select cast(max(trade_date) as varchar) from " ~ this ~ " where trade_date < cast('" ~ start ~ "' as date)"
        ).columns[0].values()[0] -%}
    {%- endif -%}
    {%- if last -%}
    trade_date > cast('{{ last }}' as date)
    {%- else -%}
    trade_date >= cast('{{ start }}' as date)
    {%- endif -%}
{%- endmacro %}
