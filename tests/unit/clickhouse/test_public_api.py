import tokengov.sinks.clickhouse as package


def test_every_public_name_resolves():
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_register_is_the_role_hook():
    from tokengov.sinks.clickhouse.role import register

    assert package.register is register
