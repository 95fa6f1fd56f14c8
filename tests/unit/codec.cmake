# Unit tests of the codec modules: topic names and filters, the CBOR
# envelope and message ids.
cairn_unit_test(test_topic unit/test_topic.c)
cairn_unit_test(test_envelope unit/test_envelope.c)
