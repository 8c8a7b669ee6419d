{#- A row-level invariant (dbt_utils.expression_is_true without the package: `dbt deps` needs a network). -#}
{% test dbt_utils_free_expression_is_true(model, expression) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
