"""Fault injection under load: the harness that proves GridLink's promise that a charger's
transaction data is never lost and never counted twice, whatever fails (issue 13).

It lives in the test tree, not in a package of its own: it is test tooling built on the
tests' process helpers (``tests/processes.py``) and private broker (``tests/rabbitmq_node.py``),
it is not shipped, and ``python -m tests.faults`` (``make faults``) runs it from a checkout.

- :mod:`tests.faults.supervisor`: restarts a process that died, as Kubernetes restarts a
  container (backoff, counted);
- :mod:`tests.faults.haproxy`: Debian's HAProxy in front of the gateways, on free ports;
- :mod:`tests.faults.cluster`: the whole stack as separate processes: a private RabbitMQ
  node, the embedded database kept alive with its data directory, two replicas of each
  service, two gateways behind HAProxy;
- :mod:`tests.faults.reconcile`: the fleet's ledger (:mod:`simulator.ledger`) against
  MongoDB: lost, duplicated, unanswered;
- :mod:`tests.faults.scenarios`: the faults, each injected under load, and the table.
"""
