"""Execution: decisions' parent orders → pre-trade gate → child-order schedule → ledger → broker, exactly once.

Exactly-once rests on two facts, not on the orchestrator: every child order has a deterministic client
order id (``ids.client_order_id``) written to the ledger **before** it is sent, and whenever the outcome of a
send is in doubt (timeout, lost reply, crash) the order is looked up at the broker by that id — never resent
blindly. ``engine.execute`` is the entry point; ``reconcile.reconcile`` runs at every start.
"""
