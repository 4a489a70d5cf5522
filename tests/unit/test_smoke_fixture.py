def test_fixture_site_has_a_user_per_role(cli):
    r = cli("user", "list", "--json")
    assert r.code == 0, r.err
    assert "dsmg" in r.out and "auditor" in r.out
