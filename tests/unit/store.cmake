# Unit tests of the durable store: outbox limits and policy, drain order,
# retries and dead letters, restart, group commit, the idempotent inbox,
# a failing-allocator sweep; and the backoff arithmetic.
cairn_unit_test(test_store unit/test_store.c)
cairn_unit_test(test_store_inbox unit/test_store_inbox.c)
cairn_unit_test(test_retry unit/test_retry.c)
target_link_libraries(test_store PRIVATE SQLite::SQLite3)
target_link_libraries(test_store_inbox PRIVATE SQLite::SQLite3)
target_link_libraries(test_retry PRIVATE m)
# host->publish_once in the store: a bridge's message id and its outbox
# records in one transaction (duplicates, failures, racing redeliveries).
cairn_unit_test(test_store_once unit/test_store_once.c)
target_link_libraries(test_store_once PRIVATE SQLite::SQLite3)
