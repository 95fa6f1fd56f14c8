# Unit tests of the in-process bus: pub/sub, work queues, request/reply.
cairn_unit_test(test_bus unit/test_bus.c)
# Circuit breakers and call policies (the `calls` section), alone and on
# the bus.
cairn_unit_test(test_breaker unit/test_breaker.c)
