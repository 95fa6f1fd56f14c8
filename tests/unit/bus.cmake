# Unit tests of the in-process bus: pub/sub, work queues, request/reply.
cairn_unit_test(test_bus unit/test_bus.c)
