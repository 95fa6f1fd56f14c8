# Unit tests of the YAML loader and the typed config tables.
cairn_unit_test(test_config unit/test_config.c)
cairn_unit_test(test_config_routes unit/test_config_routes.c)
