"""Dagster concurrency pools: one name per shared resource that allows one user at a time."""

#: DuckDB allows one writer: every dbt invocation and every asset reading the warehouse takes its one slot.
WAREHOUSE_POOL = "duckdb_warehouse"
#: One executor at a time per execution ledger.
LEDGER_POOL = "execution_ledger"
