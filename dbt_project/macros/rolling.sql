{#-
    Rolling windows for point-in-time features.

    rolling(expr, n, over_column): `expr` (an aggregate such as `avg(x)`) over the symbol's last `n` rows
    ending at the current row, and null unless all `n` rows hold a non-null `over_column` (no half-warm
    values). Frames are always explicit: a value at t reads rows <= t only.
-#}
{% macro symbol_frame(n) -%}
    (partition by symbol order by trade_date rows between {{ n - 1 }} preceding and current row)
{%- endmacro %}

{% macro rolling(expr, n, over_column) -%}
    case
        when count({{ over_column }}) over {{ symbol_frame(n) }} = {{ n }}
            then {{ expr }} over {{ symbol_frame(n) }}
    end
{%- endmacro %}

{#- max(expr, 0) that stays null when expr is null (DuckDB's greatest() skips nulls). -#}
{% macro floor_at_zero(expr) -%}
    case when ({{ expr }}) is not null then greatest(({{ expr }}), 0) end
{%- endmacro %}

{#-
    rolling_dense(expr, n, first_obs): like rolling(), for columns that are never null from the symbol's
    `first_obs`-th row on (OHLCV are never null: the ingest gate's not_null rule guarantees it; a return
    exists from the 2nd row). Fullness is then the row position `obs`, which avoids a second framed
    aggregate per feature (the count) — the costliest part of the window step. `obs` is the expression
    of the row's position (a column, or `row_number()` over the same window).
-#}
{% macro rolling_dense(expr, n, first_obs=1, obs='obs') -%}
    case
        when {{ obs }} >= {{ n + first_obs - 1 }}
            then {{ expr }} over {{ symbol_frame(n) }}
    end
{%- endmacro %}
