"""``contains(desired, live)``: the no-op detector that keeps resyncs write-free."""

from __future__ import annotations

from videomodel_operator.reconciling import contains


def test_server_added_fields_do_not_count_as_drift() -> None:
    desired = {"spec": {"ports": [{"name": "http", "port": 8000}]}}
    live = {"spec": {"ports": [{"name": "http", "port": 8000, "nodePort": 0}], "clusterIP": "10.0.0.1"}}
    assert contains(desired, live)


def test_a_changed_value_or_a_missing_field_is_drift() -> None:
    desired = {"spec": {"replicas": 2, "template": {"image": "a"}}}
    assert not contains(desired, {"spec": {"replicas": 3, "template": {"image": "a"}}})
    assert not contains(desired, {"spec": {"replicas": 2, "template": {}}})
    assert not contains(desired, None)


def test_lists_must_match_item_by_item() -> None:
    assert not contains({"args": ["--a", "1"]}, {"args": ["--a", "1", "--evil"]})
    assert not contains({"args": ["--a", "1"]}, {"args": ["--a", "2"]})
    assert contains({"env": [{"name": "A"}]}, {"env": [{"name": "A", "value": ""}]})


def test_booleans_are_not_integers() -> None:
    assert not contains({"readOnly": True}, {"readOnly": 1})
    assert not contains({"replicas": 1}, {"replicas": True})
    assert contains({"readOnly": False}, {"readOnly": False})
