"""What the ``defs/<domain>`` packages share: the resource, partitions, contract and schema
checks, freshness policies, cross-domain jobs, lifecycle handles and score asset keys.

Domains import from here and from domain code, never from one another."""
