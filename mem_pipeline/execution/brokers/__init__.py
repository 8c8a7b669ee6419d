"""Brokers behind one protocol (``base.Broker``): ``PaperBroker`` (default) and ``CcxtBroker``."""
